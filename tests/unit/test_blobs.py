"""recording/blobs.py without a database: whatever a request holds, splitting it for storage and expanding it
again gives back exactly what was sent (the values the writer stores are served from the reader cache)."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.recording import blobs

text = st.text(max_size=40) | st.text(min_size=600, max_size=1500)  # some values over MIN_BYTES
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
blocks = st.fixed_dictionaries(
    {"type": st.just("text"), "text": text}, optional={"cache_control": json_values}
)
messages = st.lists(
    st.fixed_dictionaries(
        {"role": st.sampled_from(["user", "assistant", "system", "tool"]), "content": text | st.lists(blocks)}
    ),
    max_size=6,
)
requests = st.fixed_dictionaries(
    {"model": st.text(max_size=10), "messages": messages},
    optional={"system": text | st.lists(blocks, max_size=3), "tools": st.lists(json_values, max_size=3),
              "extra": json_values},
)  # fmt: skip


def stored_and_read(writer: blobs.BlobWriter, stored: Any) -> Any:
    for sha, raw in writer.used.items():
        blobs._read_cache.put(sha, raw.decode())
    return orjson.loads(blobs.expand(orjson.dumps(stored).decode()))


@settings(max_examples=150, deadline=None)
@given(requests)
def test_a_split_client_request_reads_back_as_sent(request: dict[str, Any]) -> None:
    writer = blobs.BlobWriter()
    writer.begin_row()
    stored = writer.split_client_request(orjson.Fragment(orjson.dumps(request)))
    assert stored_and_read(writer, stored) == request


@settings(max_examples=100, deadline=None)
@given(requests)
def test_a_split_upstream_request_reads_back_as_sent(body: dict[str, Any]) -> None:
    writer = blobs.BlobWriter()
    writer.begin_row()
    upstream = {
        "method": "POST",
        "url": "http://up/v1",
        "headers": {"a": "b"},
        "body": orjson.Fragment(orjson.dumps(body)),
    }
    stored = writer.split_upstream_request(upstream)
    assert stored_and_read(writer, stored) == {**upstream, "body": body}


def test_bodies_that_are_not_objects_are_stored_unchanged() -> None:
    writer = blobs.BlobWriter()
    for value in (orjson.Fragment(b"[1, 2]"), orjson.Fragment(b'"text"'), None):
        assert writer.split_client_request(value) is value
    assert writer.used == {}
