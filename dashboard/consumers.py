"""The live feed's websocket: pushes the same row partial the page renders, as htmx OOB swaps."""

from __future__ import annotations

import logging
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.http import QueryDict
from django.template.loader import render_to_string

from dashboard import queries
from dashboard.templatetags.dashboard import ms
from proxy.recording.progress import progress

logger = logging.getLogger(__name__)


def render_live_row(pk: int, *, created: bool, filters: queries.FeedFilters) -> str | None:
    """HTML to send for one changed exchange, or None when this page's filters exclude it."""
    row = queries.row_if_matching(pk, filters)
    if row is None:
        return None
    html = render_to_string("dashboard/exchanges.html#exchange-row", {"e": row, "oob": not created})
    if created:
        # A bare <tr> cannot be parsed on its own; a <tbody> wrapper can, and htmx moves its children.
        return f'<tbody hx-swap-oob="afterbegin:#exchange-rows">{html}</tbody>'
    return html


class ExchangeFeedConsumer(AsyncWebsocketConsumer):
    groups = ["exchanges"]

    async def connect(self) -> None:
        query = QueryDict(self.scope.get("query_string", b"").decode("latin-1"))
        self.filters = queries.parse_filters(query)
        await self.accept()
        progress.listeners += 1
        self.listening = True
        logger.debug("live feed connected (filters %s)", self.filters.as_query() or "none")

    async def disconnect(self, code: int) -> None:
        if getattr(self, "listening", False):  # a socket refused before accept was never counted
            progress.listeners -= 1
            self.listening = False

    async def exchange_changed(self, event: dict[str, Any]) -> None:
        pk = event.get("id") or (event.get("row") or {}).get("id")
        if not pk:
            return
        try:
            html = await database_sync_to_async(render_live_row)(
                int(pk), created=bool(event.get("created")), filters=self.filters
            )
        except Exception:  # one bad row must not close every dashboard's socket
            logger.exception("live feed: rendering exchange %s failed", pk)
            return
        if html:
            await self.send(text_data=html)

    async def exchange_progress(self, event: dict[str, Any]) -> None:
        """A stream's progress (recording/progress.py): a few numbers, sent without a query or a template."""
        html = progress_html(event)
        if html:
            await self.send(text_data=html)


def progress_html(event: dict[str, Any]) -> str | None:
    """The progress cell of a pending row, as an OOB swap; a page without that row ignores it."""
    try:
        pk, elapsed, tokens = int(event["id"]), float(event["elapsed_ms"]), int(event["tokens"])
    except (KeyError, TypeError, ValueError):
        return None
    # Narrow, as the latency column it sits in: the title says what the numbers are.
    so_far = f" · ~{tokens} tok" if tokens else ""
    waiting = "" if tokens or event.get("first_token") else ", no token yet"
    return (
        f'<span id="progress-{pk}" class="progress" hx-swap-oob="true" '
        f'title="in flight: elapsed, and output tokens so far (estimated){waiting}">'
        f"{ms(elapsed)}{so_far}</span>"
    )
