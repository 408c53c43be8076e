"""Tell open dashboards that an exchange row changed. Called by the recorder after its commit."""

from __future__ import annotations

import logging

from channels.layers import get_channel_layer

logger = logging.getLogger(__name__)

GROUP = "exchanges"


async def publish_exchange(pk: int, *, created: bool) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        await layer.group_send(GROUP, {"type": "exchange.changed", "id": pk, "created": created})
    except Exception:  # a dashboard problem must never break recording
        logger.exception("live: publish of exchange %s failed", pk)
