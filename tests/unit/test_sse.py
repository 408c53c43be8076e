"""SSEDecoder: bytes as they arrive -> whole events (WHATWG event-stream rules)."""

from __future__ import annotations

import json

import pytest

from proxy.translate.sse import SSEDecoder, encode_event
from proxy.translate.types import SSEEvent

STREAM = (
    b'event: a\r\ndata: {"x":1}\r\n\r\n: keep-alive comment\n'
    b"data: l1\ndata: l2\n\ndata:no-space\n\ndata: [DONE]\n\n"
)
EXPECTED = [
    SSEEvent(data='{"x":1}', event="a"),
    SSEEvent(data="l1\nl2"),
    SSEEvent(data="no-space"),
    SSEEvent(data="[DONE]"),
]


def decode_in_pieces(raw: bytes, size: int) -> list[SSEEvent]:
    decoder = SSEDecoder()
    events: list[SSEEvent] = []
    for i in range(0, len(raw), size):
        events += decoder.feed(raw[i : i + size])
    return events + decoder.flush()


@pytest.mark.parametrize("size", [1, 2, 3, 7, 1000])
def test_decoder_yields_the_same_events_however_the_bytes_are_split(size: int) -> None:
    assert decode_in_pieces(STREAM, size) == EXPECTED


def test_decoder_handles_a_crlf_split_between_chunks() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\r") == []
    assert decoder.feed(b"\n\r") == []
    assert decoder.feed(b"\n") == [SSEEvent(data="a")]


def test_decoder_treats_a_lone_cr_as_a_line_end() -> None:
    assert decode_in_pieces(b"data: a\r\rdata: b\r\r", 1) == [SSEEvent(data="a"), SSEEvent(data="b")]


def test_decoder_discards_an_event_cut_before_its_blank_line() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b'data: {"complete": 1}\n\ndata: {"cut": ') == [SSEEvent(data='{"complete": 1}')]
    assert decoder.flush() == []


def test_decoder_ignores_an_event_name_without_data() -> None:
    assert decode_in_pieces(b"event: ping\n\ndata: x\n\n", 4) == [SSEEvent(data="x")]


def test_decoder_keeps_utf8_split_across_chunks() -> None:
    raw = 'data: {"t":"héllo ✓"}\n\n'.encode()
    assert decode_in_pieces(raw, 1) == [SSEEvent(data='{"t":"héllo ✓"}')]


def test_encode_event_names_the_event_by_its_type() -> None:
    frame = encode_event({"type": "content_block_stop", "index": 2})
    name, data, *_ = frame.decode().split("\n")
    assert name == "event: content_block_stop"
    assert json.loads(data.removeprefix("data: ")) == {"type": "content_block_stop", "index": 2}
    assert frame.endswith(b"\n\n")
