"""The Keys page: client keys made in the dashboard (shown once), their limits, last use, revocation.

A key is stored as its SHA-256 only. Every change bumps the configuration version, so every process
rebuilds its key table before its next request (proxy/security/clientkeys.py).
"""

from __future__ import annotations

import hashlib
from typing import Any

from django import forms
from django.conf import settings
from django.db import transaction
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from dashboard.htmx import HtmxHttpRequest
from proxy.models import ClientKey, Exchange
from proxy.routing import snapshot
from proxy.security import access, clientkeys

PAGE = "dashboard/keys.html"


class KeyForm(forms.ModelForm):
    class Meta:
        model = ClientKey
        fields = ["label", "max_concurrent", "requests_per_minute"]
        labels = {
            "max_concurrent": "Max requests in flight",
            "requests_per_minute": "Max requests per minute",
        }
        help_texts = {
            "label": "shown on every exchange this key makes, and a feed filter",
            "max_concurrent": "empty: the server default; 0: no limit",
            "requests_per_minute": "empty: the server default; 0: no limit",
        }

    def clean_label(self) -> str:
        label = self.cleaned_data["label"].strip()
        # One label, one key: a filter by label must not mix two.
        if label.startswith("env-") or label in {name for name, _ in clientkeys.env_keys()}:
            raise forms.ValidationError("this label is taken by a key in SWITCHBOARD_API_KEYS")
        return label


def _last_used(label: str) -> Any:
    # The (client_key, id) index answers this without a scan.
    return (
        Exchange.objects.filter(client_key=label).order_by("-id").values_list("created_at", flat=True).first()
    )


def _context() -> dict[str, Any]:
    keys = [(key, _last_used(key.label)) for key in ClientKey.objects.order_by("revoked_at", "-id")]
    env_keys = [
        {"label": label, "last_used": _last_used(label)}
        for label in dict.fromkeys(label for label, _ in clientkeys.env_keys())
    ]
    return {
        "keys": keys,
        "env_keys": env_keys,
        "defaults": {
            "max_concurrent": settings.KEY_MAX_CONCURRENT,
            "requests_per_minute": settings.KEY_REQUESTS_PER_MINUTE,
        },
        "any_key": bool(env_keys) or any(k.revoked_at is None for k, _ in keys),
    }


def _changed() -> None:
    """Inside the edit's transaction: every process reloads its key table before its next request."""
    snapshot.bump_version()


def keys_page(request: HtmxHttpRequest) -> HttpResponse:
    return render(request, PAGE, {**_context(), "form": KeyForm()})


@require_POST
@access.admin_only
def key_new(request: HtmxHttpRequest) -> HttpResponse:
    form = KeyForm(request.POST)
    made = admin_password = ""
    if form.is_valid():
        made = clientkeys.new_key()
        key = form.save(commit=False)
        key.digest = hashlib.sha256(made.encode()).hexdigest()
        key.hint = made[: len(clientkeys.KEY_PREFIX) + 4]
        with transaction.atomic():
            key.save()
            _changed()
        snapshot.invalidate()
        form = KeyForm()
        admin_password = _first_admin(request)
    # The key is in this one response and nowhere else: not stored, not logged, not in a redirect.
    response = render(
        request,
        PAGE + "#keys" if request.htmx else PAGE,
        {
            **_context(),
            "form": form,
            "made": made,
            "made_label": request.POST.get("label", ""),
            "admin_password": admin_password,
        },
    )
    response["cache-control"] = "no-store"
    return response


def _first_admin(request: HtmxHttpRequest) -> str:
    """A key in force turns the dashboard login on (security/access.py). If nobody could log in yet, make the
    first admin as `serve` does, log this browser in as it (so the key's maker is not locked out), and
    return its password to show once; "" when a user already exists."""
    from django.contrib.auth import login
    from django.contrib.auth.models import User

    password = access.ensure_first_admin() or ""
    if password:
        login(request, User.objects.get(username="admin"))
    return password


@require_POST
@access.admin_only
def key_revoke(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    key = get_object_or_404(ClientKey, pk=pk)
    if key.revoked_at is None:
        with transaction.atomic():
            ClientKey.objects.filter(pk=pk).update(revoked_at=timezone.now())
            _changed()
        snapshot.invalidate()
    if not request.htmx:
        return redirect("/keys")
    return render(request, PAGE + "#keys", {**_context(), "form": KeyForm()})
