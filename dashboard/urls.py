from django.urls import path

from . import data_views, route_views, views

urlpatterns = [
    path("", views.feed, name="feed"),
    path("exchanges/<int:pk>", views.exchange_detail, name="exchange"),
    path("exchanges/<int:pk>/replay", views.exchange_replay, name="exchange_replay"),
    path("tools", views.tool_matrix, name="tools"),
    path("tools/failures", views.tool_failures, name="tool_failures"),
    path("costs", views.cost_report, name="costs"),
    path("sessions", views.session_list, name="sessions"),
    path("sessions/<path:session_id>", views.session_detail, name="session"),
    path("data", data_views.data_page, name="data"),
]

urlpatterns += [
    path("routes", route_views.routes_page, name="routes"),
    path("routes/rules/new", route_views.rule_form, name="rule_new"),
    path("routes/rules/new/dry-run", route_views.rule_dry_run, name="rule_new_dry_run"),
    path("routes/rules/<int:pk>", route_views.rule_form, name="rule_edit"),
    path("routes/rules/<int:pk>/dry-run", route_views.rule_dry_run, name="rule_dry_run"),
    path("routes/rules/<int:pk>/move/<str:direction>", route_views.rule_move, name="rule_move"),
    path("routes/rules/<int:pk>/delete", route_views.rule_delete, name="rule_delete"),
    path("routes/rules/<int:pk>/test", route_views.rule_test, name="rule_test"),
    path("routes/providers/new", route_views.provider_form, name="provider_new"),
    path("routes/providers/<int:pk>", route_views.provider_form, name="provider_edit"),
    path("routes/providers/<int:pk>/delete", route_views.provider_delete, name="provider_delete"),
    path("routes/explain", route_views.explain, name="route_explain"),
]
