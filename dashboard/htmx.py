"""The request the dashboard's views get: Django's, plus `request.htmx`, which django-htmx's HtmxMiddleware
sets on every request (settings.MIDDLEWARE). The subclass is django-htmx's own advice for type checkers."""

from __future__ import annotations

from django.http import HttpRequest
from django_htmx.middleware import HtmxDetails


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails
