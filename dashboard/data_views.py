"""The Data page: how big the record is, and how much of it is kept (the retention policy)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from dashboard.forms import Form
from proxy.recording import retention
from proxy.recording.writer import recorder


class RetentionForm(Form):
    days = forms.IntegerField(
        required=False, min_value=0, label="Keep days", help_text="exchanges older than this are deleted"
    )
    max_gb = forms.FloatField(
        required=False, min_value=0, label="Keep at most GB", help_text="the oldest go first past this size"
    )


def data_page(request: HttpRequest) -> HttpResponse:
    policy = retention.current_policy()
    if request.method == "POST":
        form = RetentionForm(request.POST)
        if form.is_valid():
            retention.save_policy(days=form.cleaned_data["days"], max_gb=form.cleaned_data["max_gb"])
            recorder.prune_soon()  # this process applies it within seconds; the others within the hour
            return redirect("/data?saved=1")
    else:
        form = RetentionForm(initial={"days": policy.days, "max_gb": policy.max_gb})
    return render(
        request, "dashboard/data.html", _context(form, policy, saved=bool(request.GET.get("saved")))
    )


def _context(form: RetentionForm, policy: retention.Policy, *, saved: bool) -> dict[str, Any]:
    preview = retention.prune(policy, dry_run=True) if policy.limited else None
    return {
        "form": form,
        "policy": policy,
        "size": preview.before if preview else retention.database_size(),
        "preview": preview,
        "saved": saved,
    }
