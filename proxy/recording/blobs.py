"""Large parts that clients resend on every turn, stored once by their hash.

Claude Code resends the same system prompt blocks (~7-27 KB) and tool list (~30-80 KB) with every request,
and every earlier turn of the conversation; the translated upstream request carries them again (its system
message, tools and turns). The writer (`BlobWriter`, in the recorder's thread) replaces each such value in
the stored JSON (a system block, the tool list, a message before the newest turn) by a reference string
`"$blob:sha256:<hex>"` and keeps the value once in the `Blob` table, so a session costs what is new in each
turn; `expand` puts the values back, so
every reader sees the whole body as the client sent it (as parsed JSON: key order and values kept,
insignificant whitespace not). Rows written before this, with inline bodies, read unchanged.

Each blob's `last_id` is the newest exchange id that may refer to it: the prune deletes blobs whose
`last_id` is below every remaining exchange's id, with no scan of the bodies.
"""

from __future__ import annotations

import hashlib
import re
from collections import OrderedDict
from typing import Any

import orjson

from proxy.translate.types import JSONDict

PREFIX = "$blob:sha256:"
_REF = re.compile(r'"\$blob:sha256:([0-9a-f]{64})"')
MIN_BYTES = 512  # smaller values stay inline: a blob row costs ~150 bytes, a reference ~80 per use
LARGE_BYTES = 64 * 1024  # in the newest turn, only values this large are stored apart
_READ_CACHE_CHARS = 32 * 1024 * 1024  # blobs never change, so readers keep the recent ones in memory
_READ_CACHE_ENTRY_CHARS = 1024 * 1024
_KNOWN_LIMIT = 4096  # hashes this writer stored already: skips a lookup per value


class _ReadCache:
    """sha -> JSON text, least recently used out first (shared by every reader thread: a dict's
    get/set/pop are atomic under the GIL, and a lost race only costs a second fetch)."""

    def __init__(self) -> None:
        self._texts: OrderedDict[str, str] = OrderedDict()
        self._chars = 0

    def get(self, sha: str) -> str | None:
        return self._texts.get(sha)

    def put(self, sha: str, text: str) -> None:
        if len(text) > _READ_CACHE_ENTRY_CHARS:  # an image: read rarely, and it would evict the prompts
            return
        if sha not in self._texts:
            self._texts[sha] = text
            self._chars += len(text)
        while self._chars > _READ_CACHE_CHARS and self._texts:
            _, old = self._texts.popitem(last=False)
            self._chars -= len(old)


_read_cache = _ReadCache()


def expand(text: str, connection: Any = None) -> str:
    """The stored JSON text with every reference replaced by its value (the one function readers use).

    A reference whose blob is missing stays as it is: the row still reads, and says what is missing."""
    if PREFIX not in text:
        return text
    shas = set(_REF.findall(text))
    texts = {sha: t for sha in shas if (t := _read_cache.get(sha)) is not None}
    missing = shas - texts.keys()
    if missing:
        texts.update(_fetch(missing, connection))
    return _REF.sub(lambda m: texts.get(m.group(1), m.group(0)), text)


def loads(text: str | None, connection: Any = None) -> Any:
    """A stored body's JSON text -> the whole value (for readers that read bodies as raw text)."""
    return orjson.loads(expand(text, connection)) if text else None


def _fetch(shas: set[str], connection: Any) -> dict[str, str]:
    if connection is None:
        from django.db import connection
    from proxy.models import Blob

    table = connection.ops.quote_name(Blob._meta.db_table)
    found: dict[str, str] = {}
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT sha256, data FROM {table} WHERE sha256 IN ({', '.join(['%s'] * len(shas))})",
            list(shas),
        )
        for sha, data in cursor.fetchall():
            found[sha] = data
            _read_cache.put(sha, data)
    return found


def matching(term_variants: set[str], limit: int = 20) -> tuple[list[str], Any]:
    """The blobs whose text contains any of the variants: the hashes of the first `limit` (rows that refer
    to them match: system prompts and tool lists, few and shared by many rows), and a subquery of the
    exchanges that first stored each (a message is found in the turn that sent it first)."""
    from django.db.models import Q

    from proxy.models import Blob

    q = Q()
    for v in term_variants:
        q |= Q(data__icontains=v)
    found = Blob.objects.filter(q)
    return list(found.values_list("sha256", flat=True)[:limit]), found.values("first_id")


class BlobWriter:
    """Splits the large repeated values out of the bodies of one batch of rows. Writer thread only."""

    def __init__(self) -> None:
        self._known: OrderedDict[str, None] = OrderedDict()  # hashes stored by this writer
        self.used: dict[str, bytes] = {}  # this batch: sha -> value JSON
        self._rows: list[list[str]] = []  # this batch, a row at a time in write order: the hashes it uses

    def begin_batch(self) -> None:
        self.used, self._rows = {}, []

    def begin_row(self) -> None:
        self._rows.append([])

    def split_client_request(self, value: Any) -> Any:
        """The client's request with its system blocks, tools and earlier turns replaced by references."""
        body = _as_dict(value)
        if body is None:
            return value
        self._split_request_body(body)
        return orjson.Fragment(orjson.dumps(body))

    def split_upstream_request(self, value: Any) -> Any:
        """The upstream request ({method, url, headers, body}) with the body's large repeats split out:
        an Anthropic body as the client's, a Chat Completions body's system message, tools and turns."""
        request = _as_dict(value)
        if request is None:
            return value
        body = request.get("body")
        if isinstance(body, orjson.Fragment):
            body = _as_dict(body)
        if not isinstance(body, dict):
            return value
        self._split_request_body(body)
        request["body"] = body
        return orjson.Fragment(orjson.dumps(request))

    def _split_request_body(self, body: JSONDict) -> None:
        system = body.get("system")
        if isinstance(system, list):
            # Block by block: newer CLIs open the system prompt with a billing line that changes on
            # every request, while the blocks after it repeat.
            body["system"] = [self._ref(block) for block in system]
        elif system is not None:
            body["system"] = self._ref(system)
        if "tools" in body:
            body["tools"] = self._ref(body["tools"])
        messages = body.get("messages")
        if isinstance(messages, list):
            body["messages"] = self._split_messages(messages)

    def _split_messages(self, messages: list[Any]) -> list[Any]:
        """Every turn before the newest is resent unchanged by the next request: one blob per message.
        The newest turn (after the last assistant message) stays inline: its cache_control mark moves on
        next turn, and the tool-call analysis finds the tool results it brings by a text search."""
        newest = max((i for i, m in enumerate(messages) if _role(m) == "assistant"), default=-1)
        out: list[Any] = []
        for i, m in enumerate(messages):
            if _role(m) in ("system", "developer"):  # a Chat Completions system prompt: its text repeats
                out.append({**m, "content": self._ref(m.get("content"))})
            elif i < newest:
                out.append(self._ref(m))
            else:
                out.append(self._split_large(m))
        return out

    def _split_large(self, message: Any) -> Any:
        """The newest turn's very large values (an image's or document's source, a long tool result)
        stored apart, its blocks' small fields inline: the row stays small, so rewriting it when the
        exchange finishes no longer copies a 20 MB image again, and the next turn refers to the blob."""
        if not isinstance(message, dict):
            return message
        content = message.get("content")
        if isinstance(content, str):
            return (
                {**message, "content": self._ref_large(content)} if len(content) >= LARGE_BYTES else message
            )
        if not isinstance(content, list):
            return message
        blocks = [
            {k: self._ref_large(v) for k, v in b.items()} if isinstance(b, dict) else b for b in content
        ]
        return {**message, "content": blocks}

    def _ref_large(self, value: Any) -> Any:
        if isinstance(value, str):
            return self._ref(value) if len(value) >= LARGE_BYTES else value
        if isinstance(value, (dict, list)) and len(orjson.dumps(value)) >= LARGE_BYTES:
            return self._ref(value)
        return value

    def _ref(self, value: Any) -> Any:
        if not isinstance(value, (str, list, dict)) or (isinstance(value, str) and len(value) < MIN_BYTES):
            return value
        raw = orjson.dumps(value)
        if len(raw) < MIN_BYTES:
            return value
        sha = hashlib.sha256(raw).hexdigest()
        self.used[sha] = raw
        if self._rows:
            self._rows[-1].append(sha)
        return PREFIX + sha

    def store(self, cursor: Any, connection: Any, *, pks: list[int]) -> None:
        """Write this batch's blobs in the rows' transaction, `pks` being the rows' ids in write order:
        new ones inserted, every one's last_id raised (one UPDATE when every value is known already)."""
        from proxy.models import Blob

        used, rows = self.used, self._rows
        self.begin_batch()
        if not used or not pks:
            return
        table = connection.ops.quote_name(Blob._meta.db_table)
        spans = _spans(rows, pks, used)
        # Never lowered: another process may have written a newer row that refers to the same blob.
        greatest = "max" if connection.vendor == "sqlite" else "greatest"
        shas = list(used)
        for part in [shas[i : i + 500] for i in range(0, len(shas), 500)]:
            marks = ", ".join(["%s"] * len(part))
            cases = " ".join(["WHEN %s THEN %s"] * len(part))
            cursor.execute(
                f"UPDATE {table} SET last_id = {greatest}(last_id, CASE sha256 {cases} END) "
                f"WHERE sha256 IN ({marks})",
                [*(v for sha in part for v in (sha, spans[sha][1])), *part],
            )
            # A hash this writer stored may have been swept by a prune since (in this process or
            # another): whenever the UPDATE missed any, look which, and insert those.
            if cursor.rowcount < len(part) or any(sha not in self._known for sha in part):
                cursor.execute(f"SELECT sha256 FROM {table} WHERE sha256 IN ({marks})", part)
                present = {row[0] for row in cursor.fetchall()}
                new = [sha for sha in part if sha not in present]
                for group in _by_size(new, used):
                    _insert(cursor, connection, table, group, used=used, spans=spans, greatest=greatest)
        for sha in shas:
            self._known[sha] = None
            self._known.move_to_end(sha)
        while len(self._known) > _KNOWN_LIMIT:
            self._known.popitem(last=False)


def _insert(
    cursor: Any,
    connection: Any,
    table: str,
    new: list[str],
    *,
    used: dict[str, bytes],
    spans: dict[str, tuple[int, int]],
    greatest: str,
) -> None:
    from django.utils import timezone

    now = connection.ops.adapt_datetimefield_value(timezone.now())
    params = [v for sha in new for v in (sha, used[sha].decode(), len(used[sha]), *spans[sha], now)]
    cursor.execute(
        f"INSERT INTO {table} (sha256, data, size, first_id, last_id, created_at) VALUES "
        + ", ".join(["(%s, %s, %s, %s, %s, %s)"] * len(new))
        + f" ON CONFLICT (sha256) DO UPDATE SET last_id = {greatest}({table}.last_id, excluded.last_id)",
        params,
    )


_STATEMENT_BYTES = 1 << 20  # as the recorder's: the database library copies what a statement binds


def _by_size(shas: list[str], used: dict[str, bytes]) -> list[list[str]]:
    """Groups of at most 100 blobs and, unless one alone is larger, _STATEMENT_BYTES."""
    groups: list[list[str]] = []
    size = 0
    for sha in shas:
        if groups and len(groups[-1]) < 100 and size + len(used[sha]) <= _STATEMENT_BYTES:
            groups[-1].append(sha)
            size += len(used[sha])
        else:
            groups.append([sha])
            size = len(used[sha])
    return groups


def _spans(rows: list[list[str]], pks: list[int], used: dict[str, bytes]) -> dict[str, tuple[int, int]]:
    """sha -> (first, last) id of the batch's rows that use it: search finds a value's first sender, and
    the prune keeps a blob while a row up to `last` is kept. Rows not told apart: the batch's range."""
    whole = (min(pks), max(pks))
    if len(rows) != len(pks):
        return dict.fromkeys(used, whole)
    spans: dict[str, tuple[int, int]] = {}
    for shas, pk in zip(rows, pks, strict=True):
        for sha in shas:
            first, last = spans.get(sha, (pk, pk))
            spans[sha] = (min(first, pk), max(last, pk))
    return {sha: spans.get(sha, whole) for sha in used}


def _role(message: Any) -> Any:
    return message.get("role") if isinstance(message, dict) else None


def _as_dict(value: Any) -> JSONDict | None:
    """A body as recorded on the tape (parsed, or the JSON bytes as received) -> a dict to split."""
    if isinstance(value, dict):
        return dict(value)
    if isinstance(value, orjson.Fragment):
        try:
            parsed = orjson.loads(orjson.dumps(value))  # a Fragment's bytes are reachable only this way
        except orjson.JSONDecodeError:
            return None
        return parsed if isinstance(parsed, dict) else None
    return None
