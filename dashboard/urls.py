from django.urls import path

from . import views

urlpatterns = [
    path("", views.feed, name="feed"),
    path("exchanges/<int:pk>", views.exchange_detail, name="exchange"),
    path("tools", views.tool_matrix, name="tools"),
    path("tools/failures", views.tool_failures, name="tool_failures"),
    path("costs", views.cost_report, name="costs"),
    path("sessions", views.session_list, name="sessions"),
    path("sessions/<str:session_id>", views.session_detail, name="session"),
]
