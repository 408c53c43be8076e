from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from proxy.models import Exchange


def feed(request: HttpRequest) -> HttpResponse:
    exchanges = Exchange.objects.all()[:100]
    return render(request, "dashboard/feed.html", {"exchanges": exchanges})
