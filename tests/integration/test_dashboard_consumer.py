"""The live-feed websocket: proxy.recording.live.publish_exchange -> the row partial as an htmx OOB swap."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.utils import timezone

from dashboard.consumers import ExchangeFeedConsumer
from proxy.models import Exchange
from proxy.recording.live import publish_exchange

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.anyio]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@sync_to_async
def make(**fields: object) -> Exchange:
    return Exchange.objects.create(created_at=timezone.now(), client_model="claude-sonnet-4-5", **fields)


async def connect(query: str = "") -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(ExchangeFeedConsumer.as_asgi(), "/ws/exchanges/" + query)
    connected, _ = await communicator.connect()
    assert connected
    return communicator


async def test_consumer_sends_new_row_prepended_to_the_table() -> None:
    feed = await connect()
    row = await make(status="pending", backend_model="gpt-5-mini")
    await publish_exchange(row.pk, created=True)
    html = await feed.receive_from(timeout=3)
    assert html.startswith('<tbody hx-swap-oob="afterbegin:#exchange-rows">')
    assert f'<tr id="exchange-{row.pk}"' in html and "gpt-5-mini" in html
    assert 'hx-swap-oob="true"' not in html
    await feed.disconnect()


async def test_consumer_sends_updated_row_replacing_itself() -> None:
    feed = await connect()
    row = await make(status="ok", output_tokens=42)
    await publish_exchange(row.pk, created=False)
    html = await feed.receive_from(timeout=3)
    assert html.lstrip().startswith(f'<tr id="exchange-{row.pk}"')
    assert 'hx-swap-oob="true"' in html and "status ok" in html
    await feed.disconnect()


async def test_consumer_skips_rows_the_page_filters_exclude() -> None:
    feed = await connect("?status=error")
    ok = await make(status="ok")
    bad = await make(status="error", error_type="api_error")
    await publish_exchange(ok.pk, created=True)
    await publish_exchange(bad.pk, created=True)
    html = await feed.receive_from(timeout=3)
    assert f'id="exchange-{bad.pk}"' in html
    assert await feed.receive_nothing(timeout=0.3)
    await feed.disconnect()


async def test_consumer_escapes_hostile_content_in_pushed_rows() -> None:
    feed = await connect()
    row = await make(agent='<img src=x onerror="alert(1)">', status="ok")
    await publish_exchange(row.pk, created=True)
    html = await feed.receive_from(timeout=3)
    assert "<img" not in html and "&lt;img src=x" in html
    await feed.disconnect()


def test_progress_is_a_small_oob_swap_of_numbers_only() -> None:
    # Issue #12: the live feed's progress of a stream, rendered without a query or a template.
    from dashboard.consumers import progress_html

    html = progress_html({"id": 42, "elapsed_ms": 12345, "tokens": 450, "first_token": True})
    assert html is not None and html.startswith('<span id="progress-42" class="progress" hx-swap-oob="true"')
    assert ">12.3 s · ~450 tok</span>" in html
    assert progress_html({"id": "42<script>", "elapsed_ms": 1, "tokens": 0}) is None
    assert "no token yet" in (progress_html({"id": 7, "elapsed_ms": 480, "tokens": 0}) or "")
