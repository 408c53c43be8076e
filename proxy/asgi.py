"""ASGI entry point: the API on its fast path, the rest through Django, the live feed over websockets."""

from __future__ import annotations

import os
from typing import Any

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "proxy.settings")

from channels.auth import AuthMiddlewareStack
from channels.routing import ProtocolTypeRouter, URLRouter
from django.core.asgi import get_asgi_application
from django.urls import path

django_app = get_asgi_application()

from dashboard.consumers import ExchangeFeedConsumer  # noqa: E402
from proxy.http.handler import API_PREFIX, ApiHandler  # noqa: E402
from proxy.security.access import WebsocketGuard  # noqa: E402

api_app = ApiHandler()


async def http_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """/v1/ (what API clients call) skips Django's middleware and signals; the dashboard keeps them."""
    if scope["path"].startswith(API_PREFIX):
        await api_app(scope, receive, send)
    else:
        await django_app(scope, receive, send)


application = ProtocolTypeRouter(
    {
        "http": http_app,
        "websocket": AuthMiddlewareStack(
            WebsocketGuard(URLRouter([path("ws/exchanges/", ExchangeFeedConsumer.as_asgi())]))
        ),
    }
)
