from django.urls import include, path

from proxy.http import views
from proxy.ops import endpoints

urlpatterns = [
    path("v1/messages", views.messages, name="messages"),
    path("v1/messages/count_tokens", views.count_tokens, name="count_tokens"),
    path("v1/models", views.models, name="models"),
    path("v1/models/<str:model_id>", views.model, name="model"),
    path("api/sessions/<str:session_id>/summary", endpoints.session_summary, name="api_session_summary"),
    path("healthz", endpoints.healthz, name="healthz"),
    path("readyz", endpoints.readyz, name="readyz"),
    path("metrics", endpoints.prometheus, name="metrics"),
    path("", include("dashboard.urls")),
]
