"""What one exchange leaves behind while it is served: filled in on the hot path, written later.

Appends only (no encoding, no copies) while the request is in flight. While the writer is behind, the
bodies are compressed for the wait (`seal`, `seal_request`); its thread turns the tape into a row.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import count
from typing import Any, Literal

import orjson
import zstandard

from proxy.http.request_ids import new_request_id
from proxy.translate.dialects import DIALECTS
from proxy.translate.types import JSONDict, Message

_keys = count(1)

# Header names whose values are secrets: never stored, never shown. Besides these hints, each dialect
# declares the headers it authenticates with (`capabilities.secret_headers`).
_SECRET_HINTS = ("key", "token", "secret", "authorization", "cookie", "password")


def is_secret_header(name: str) -> bool:
    """`name` lower-case: authorization, x-api-key, api-key, x-goog-api-key, a provider's own x-…-token."""
    return any(h in name for h in _SECRET_HINTS) or any(
        name in dialect.capabilities.secret_headers for dialect in DIALECTS.values()
    )


def safe_headers(headers: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in headers.items() if not is_secret_header(k) and not k.startswith(":")}


class _Codec(threading.local):
    """One zstd context pair per thread (the event loop packs, the writer unpacks): a context is not
    thread-safe, and keeping one spares allocating its workspace on every call."""

    def __init__(self) -> None:
        self.compressor = zstandard.ZstdCompressor(level=1)
        self.decompressor = zstandard.ZstdDecompressor()

    def pack(self, raw: bytes) -> bytes:
        # The library's result keeps the allocation of the worst case (the input's size) behind its
        # shorter length: without the copy a packed body held as much memory as the plain one.
        return bytes(memoryview(self.compressor.compress(raw)))


_codec = _Codec()


@dataclass(frozen=True, slots=True)
class Packed:
    """A recorded body, compressed while it waits for the writer.

    Under saturation the writer runs a few hundred exchanges behind, each holding its request twice
    (as received, as translated) and the upstream reply: ~100 KB apiece, most of the process's peak
    memory. zstd level 1 packs Claude Code's bodies 2.7-4.8x in 120-175 us and unpacks them in 40-60 us
    (zlib level 1: 620-800 us and 220-380 us, for a smaller ratio; docs/benchmarks.md).
    """

    data: bytes
    text: bool = False  # False: JSON, stored as is; True: text (a raw reply or SSE transcript)

    @classmethod
    def json(cls, value: object) -> Packed:
        return cls(_codec.pack(orjson.dumps(value)))

    @classmethod
    def raw_text(cls, raw: bytes) -> Packed:
        return cls(_codec.pack(raw), text=True)

    def unpack(self) -> orjson.Fragment | str:
        raw = _codec.decompressor.decompress(self.data)
        return raw.decode("utf-8", errors="replace") if self.text else orjson.Fragment(raw)


Outcome = Literal["ok", "error", "cancelled"]


@dataclass(frozen=True, slots=True)
class Failure:
    """Why an exchange did not end well, as the client was told."""

    error_type: str  # Anthropic's error type ("" for a cancelled exchange: nobody was told)
    message: str
    http_status: int | None = None  # None: the status already sent stands (a stream's 200)


@dataclass(slots=True)
class Tape:
    endpoint: str
    client_request: orjson.Fragment | JSONDict | Packed | str | None  # as received (str: it was not JSON)
    client_headers: dict[str, str]
    stream: bool = False
    key: int = field(default_factory=lambda: next(_keys))
    request_id: str = field(default_factory=new_request_id)  # req_…: the `request-id` the client saw
    received_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    t0: float = field(default_factory=time.perf_counter)
    session_id: str = ""
    documents: bool = False  # the request may carry document blocks (translated on a worker thread)
    # tool_use ids the request reports failed, credited by the writer to the rows that made the calls:
    failed_results: tuple[str, ...] = ()  # calls the client refused to run (the model's failure)
    error_results: tuple[str, ...] = ()  # tools that ran and reported an error (their result)
    origin: str = ""  # "" a client's request; "test" the routes editor's test button; "replay"
    user_agent: str = ""
    client_model: str = ""
    client_key: str = ""  # the label of the client key it came with
    admission: Any = (
        None  # its key's concurrency slot (proxy.security.clientkeys.Admission), released on finish
    )
    # routing
    rule: str = ""
    route_reason: str = ""
    task: str = ""
    agent: str = ""
    provider: str = ""
    dialect: str = ""
    backend_model: str = ""
    prices: dict[str, float] = field(default_factory=dict)  # the provider's own price overrides
    attempts: list[JSONDict] = field(default_factory=list)
    changes: list[JSONDict] = field(default_factory=list)
    # both sides
    upstream_request: JSONDict | Packed | None = None  # its "body" is an orjson.Fragment of the bytes sent
    upstream_chunks: list[bytes] = field(default_factory=list)
    upstream_response: Packed | None = None  # the chunks, once sealed
    client_message: Message | None = None  # as the client got it (a stream's events accumulated)
    usage: dict[str, Any] = field(default_factory=dict)
    # outcome
    status: str = "pending"
    http_status: int | None = None
    error_type: str = ""
    error_message: str = ""
    # perf_counter stamps
    first_byte_at: float | None = None
    first_token_at: float | None = None
    done_at: float | None = None
    finished: bool = False  # handed to the recorder: nothing on the hot path touches the tape after this

    def seal_request(self) -> None:
        """Compress the client's request: routing and translation are done with it once the exchange runs."""
        if self.client_request is not None and not isinstance(self.client_request, Packed):
            self.client_request = Packed.json(self.client_request)

    def seal(self) -> None:
        """Compress the bodies for the wait in the writer's queue: the exchange is over, nothing on the hot
        path reads them again."""
        self.seal_request()
        if self.upstream_request is not None and not isinstance(self.upstream_request, Packed):
            self.upstream_request = Packed.json(self.upstream_request)
        if self.upstream_chunks:
            self.upstream_response = Packed.raw_text(b"".join(self.upstream_chunks))
            self.upstream_chunks = []

    def ms(self, stamp: float | None) -> float | None:
        return None if stamp is None else round((stamp - self.t0) * 1000, 3)

    def end(self, status: Outcome, error: Failure | None = None) -> None:
        """The exchange is over: stamp its outcome and time, and hand the tape to the writer. The one way a
        tape is finished; only the first call counts (a `finally` may follow a refusal that ended it)."""
        if self.finished:
            return
        self.done_at = time.perf_counter()
        self.status = status
        if error is not None:
            self.error_type, self.error_message = error.error_type, error.message
            if error.http_status is not None:
                self.http_status = error.http_status
        from proxy.recording.writer import recorder  # the writer imports this module

        recorder.finish(self)
