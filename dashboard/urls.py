from django.contrib.auth import views as auth_views
from django.urls import path, register_converter

from . import api, data_views, key_views, route_views, views
from .forms import LoginForm


class IdConverter:
    """A database id: digits that fit a 64-bit integer, so a huge number is a 404, not an overflow."""

    regex = "[0-9]{1,18}"

    def to_python(self, value: str) -> int:
        return int(value)

    def to_url(self, value: int) -> str:
        return str(value)


register_converter(IdConverter, "id")

urlpatterns = [
    # JSON for scripts and tests: a client key is enough when a login is required (security/access.py)
    path("api/exchanges", api.exchanges, name="api_exchanges"),
    path("api/route/explain", api.explain, name="api_route_explain"),
    path("", views.feed, name="feed"),
    path("exchanges/<id:pk>", views.exchange_detail, name="exchange"),
    path("exchanges/<id:pk>/replay", views.exchange_replay, name="exchange_replay"),
    path("exchanges/<id:pk>/raw/<slug:side>", views.exchange_raw, name="exchange_raw"),
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
    path("routes/rules/<id:pk>", route_views.rule_form, name="rule_edit"),
    path("routes/rules/<id:pk>/dry-run", route_views.rule_dry_run, name="rule_dry_run"),
    path("routes/rules/<id:pk>/move/<str:direction>", route_views.rule_move, name="rule_move"),
    path("routes/rules/<id:pk>/delete", route_views.rule_delete, name="rule_delete"),
    path("routes/rules/<id:pk>/test", route_views.rule_test, name="rule_test"),
    path("routes/providers/new", route_views.provider_form, name="provider_new"),
    path("routes/providers/<id:pk>", route_views.provider_form, name="provider_edit"),
    path("routes/providers/<id:pk>/delete", route_views.provider_delete, name="provider_delete"),
    path("routes/explain", route_views.explain, name="route_explain"),
]

# The dashboard login (required only when proxy.security.access.login_required() says so).
urlpatterns += [
    path("login", auth_views.LoginView.as_view(template_name="dashboard/login.html", form_class=LoginForm,
                                               redirect_authenticated_user=True), name="login"),
    path("logout", auth_views.LogoutView.as_view(next_page="/login"), name="logout"),
]  # fmt: skip
urlpatterns += [
    path("keys", key_views.keys_page, name="keys"),
    path("keys/new", key_views.key_new, name="key_new"),
    path("keys/<id:pk>/revoke", key_views.key_revoke, name="key_revoke"),
]
