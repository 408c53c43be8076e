"""Random ids shaped like Anthropic's: `msg_…` for messages, `req_…` for requests (the exchange's id
a user quotes). Not in translate/: the pure core is handed its ids, never draws them."""

from __future__ import annotations

import os

_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def _base62_id(prefix: str) -> str:
    """`prefix` + 24 base62 characters (~142 random bits) from one urandom call: ~2 us."""
    n = int.from_bytes(os.urandom(18))
    chars = []
    for _ in range(24):
        n, r = divmod(n, 62)
        chars.append(_BASE62[r])
    return prefix + "".join(chars)


def new_message_id() -> str:
    return _base62_id("msg_")


def new_request_id() -> str:
    """The id of one API request: its `request-id` header, its error bodies' `request_id`, its exchange."""
    return _base62_id("req_")
