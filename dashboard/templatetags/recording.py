"""`{% recording_status %}`: a line on every page while exchanges wait for the database or were not kept."""

from __future__ import annotations

from typing import Any

from django import template

from proxy.recording.writer import recorder

register = template.Library()


@register.inclusion_tag("dashboard/_recording_status.html")
def recording_status() -> dict[str, Any]:
    return {"recording": recorder.status()}
