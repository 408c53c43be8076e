"""ASGI entry point: HTTP to Django, the dashboard's live feed over websockets."""

from __future__ import annotations

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "proxy.settings")

from channels.routing import ProtocolTypeRouter, URLRouter
from channels.security.websocket import AllowedHostsOriginValidator
from django.core.asgi import get_asgi_application
from django.urls import path

django_app = get_asgi_application()

from dashboard.consumers import ExchangeFeedConsumer  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_app,
        "websocket": AllowedHostsOriginValidator(
            URLRouter([path("ws/exchanges/", ExchangeFeedConsumer.as_asgi())])
        ),
    }
)
