"""An offline estimate for POST /v1/messages/count_tokens when the backend cannot count.

Claude's tokenizer is not public, so this is an ESTIMATE: text is counted with OpenAI's cl100k encoding
(bpe-openai, bundled in the wheel; tiktoken would download its vocabulary). cl100k rather than o200k:
Claude's tokenizers split text more finely than both, so the coarser o200k undercounts more, and cl100k
is the smaller encoder (~42 MB kept once loaded, see _drop_python_tables). Images are counted with
Anthropic's published formula, and small fixed overheads are added per message and for tool
definitions. Expect it to be within roughly 10-20% of Anthropic's own count for English and code; never
use it for billing.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import ctypes
import math
import struct
import warnings
from functools import cache
from typing import Any

import orjson

from .types import JSONDict, MessagesRequest

# Role markers and block separators: Anthropic does not publish them; a few tokens per message is typical.
MESSAGE_OVERHEAD = 4
BLOCK_OVERHEAD = 1
# Anthropic's tool-use system prompt adds ~346 tokens whenever tools are present (tool_choice auto/none,
# Claude 4 family): https://docs.anthropic.com/en/docs/agents-and-tools/tool-use/overview#pricing
TOOLS_PREAMBLE = 346
TOOL_OVERHEAD = 8

# https://docs.anthropic.com/en/docs/build-with-claude/vision#calculate-image-costs
# tokens = width * height / 750, after scaling so the long edge is at most 1568 px; about 1600 at most.
IMAGE_TOKENS_MAX = 1600
IMAGE_TOKENS_UNKNOWN = 1600  # URL/file images and dimensions we cannot read cheaply
_IMAGE_LONG_EDGE = 1568
DOCUMENT_TOKENS_UNKNOWN = 1600  # a PDF or file document: no cheap way to know its pages

# Enough base64 to reach a JPEG's SOF marker past typical EXIF/ICC headers; a multiple of 4.
_JPEG_B64_PREFIX = 65536
_PNG_B64_PREFIX = 32


@cache
def _encoding() -> Any:
    """The cl100k encoder, loaded once on first use (about a second; call warm_up() at startup)."""
    with warnings.catch_warnings():
        # bpe-openai 0.1.4 loads its vocabularies through importlib.resources.open_binary at import
        # (deprecated, harmless): keep that out of logs and `-W error` runs.
        warnings.simplefilter("ignore", DeprecationWarning)
        import bpe_openai  # deferred: importing it loads the vocabularies, the slow part

        encoding = bpe_openai.get_encoding("cl100k_base")
        _drop_python_tables(encoding)
    return encoding


# Counted before and after the tables go: a bpe-openai that needs them for encode_ordinary keeps them.
_PROBE = 'Switchboard counts tokens: déjà vu, 1234 ✓ {"a": [1, 2]}'


def _drop_python_tables(encoding: Any) -> None:
    """Free what bpe-openai keeps in Python beside its Rust encoder: ~98 MB loaded, ~42 MB after (measured).

    Importing it builds Python dicts of the ranks of all three of its vocabularies (cached in its
    registry), and the encoding keeps two more tables of its own for decoding and single-token lookups.
    encode_ordinary, all we use, runs in Rust without them. A count-only process has no use for ~56 MB of
    dicts (a Claude Code session calls count_tokens early, so nearly every server would carry them).
    """
    from bpe_openai import registry

    expected = encoding.encode_ordinary(_PROBE)
    kept = {name: getattr(encoding, name) for name in ("_mergeable_ranks", "_rank_to_bytes")}
    if not all(isinstance(table, (dict, list)) for table in kept.values()):
        return  # not the library version this was written against: leave it as it is
    for name, table in kept.items():
        setattr(encoding, name, type(table)())
    if encoding.encode_ordinary(_PROBE) != expected:
        for name, table in kept.items():  # it does need them after all
            setattr(encoding, name, table)
        return
    kept.clear()  # the last references to the old tables: freed now, before malloc_trim below
    for loader in vars(registry).values():
        if callable(getattr(loader, "cache_clear", None)):
            loader.cache_clear()
    _return_freed_memory()


def _return_freed_memory() -> None:
    """Hand the freed tables' pages back to the OS (glibc keeps them otherwise); elsewhere, nothing."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def warm_up() -> None:
    """Load the encoder now so the first count_tokens request does not pay for it."""
    _encoding().encode_ordinary("warm up")


def count_tokens(request: MessagesRequest) -> int:
    """Estimated input tokens of a Messages request (system, messages, tools). See the module docstring."""
    return sum(count_breakdown(request).values())


def count_text_tokens(text: str) -> int:
    """Estimated tokens of plain text (a model's output)."""
    return _encoded_length(_encoding(), text)


# bpe-openai refuses one call over 1,000,000 characters or 200,000 tokens ("Input too long to encode
# safely"), so longer text is counted in slices, cut after a newline or before a space where the
# encoder's pre-tokenizer splits anyway, so the total equals one call's. A slice that still makes too
# many tokens (text of one token per character or more) is counted again in quarters.
_ENCODE_SLICE = 150_000


def _encoded_length(encoding: Any, text: str, size: int = _ENCODE_SLICE) -> int:
    total, start = 0, 0
    while start < len(text):
        end = _slice_end(text, start, start + size) if len(text) - start > size else len(text)
        try:
            total += len(encoding.encode_ordinary(text[start:end]))
        except ValueError:
            if size < 1000:
                raise
            total += _encoded_length(encoding, text[start:end], size // 4)
        start = end
    return total


def _slice_end(text: str, start: int, limit: int) -> int:
    """Where to cut: after a newline, else before a space, that starts no whitespace run; else `limit`."""
    floor = start + (limit - start) // 2
    newline = text.rfind("\n", floor, limit)
    if newline >= 0 and not text[newline + 1 : newline + 2].isspace():
        return newline + 1
    space = text.rfind(" ", floor, limit)
    if space > start and not text[space - 1].isspace() and not text[space + 1 : space + 2].isspace():
        return space
    return limit


# For estimates without the encoder. A request's JSON ran 3.8-4.5 characters per token counted by
# count_tokens on the captured Claude Code turns (5.9 for the small background calls, mostly JSON syntax);
# English and code output run about 4 in cl100k.
REQUEST_JSON_CHARS_PER_TOKEN = 4.4
TEXT_CHARS_PER_TOKEN = 4


def estimate_from_size(request_bytes: int) -> int:
    """A request's input tokens from the size of its JSON alone: no parsing, no encoder (within ~15% of
    count_tokens on Claude Code's turns; its small background calls come out ~1.5x high)."""
    return math.ceil(request_bytes / REQUEST_JSON_CHARS_PER_TOKEN)


def usage_estimate(request: MessagesRequest | None, generated: str) -> tuple[int, int]:
    """(input, output) tokens for an exchange whose backend never reported usage (a stream we or the
    client cut short). Counted when the encoder is loaded already; otherwise from lengths, because
    loading it for a fallback would cost ~1 s of CPU (with pauses of ~50 ms for the other threads) and
    ~100 MB of memory in a process that never needed it."""
    if _encoding.cache_info().currsize:
        return (count_tokens(request) if request else 0), count_text_tokens(generated)
    request_chars = len(orjson.dumps(request)) if request else 0
    return (
        estimate_from_size(request_chars),
        math.ceil(len(generated) / TEXT_CHARS_PER_TOKEN),
    )


def count_breakdown(request: MessagesRequest) -> dict[str, int]:
    """Estimated tokens per part: system, tools, messages (incl. overheads) and tool_results."""
    counter = _Counter()
    system = request.get("system")
    if isinstance(system, str):
        counter.text("system", system)
    elif isinstance(system, list):
        for block in system:
            counter.block("system", block)
    tools = request.get("tools") or []
    if tools:
        counter.fixed["tools"] += TOOLS_PREAMBLE
    for tool in tools:
        counter.tool(tool)
    for message in request.get("messages") or []:
        counter.fixed["messages"] += MESSAGE_OVERHEAD
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            counter.text("messages", content)
        elif isinstance(content, list):
            for block in content:
                counter.block("messages", block)
    return counter.totals()


class _Counter:
    """Collects text per part, then encodes each part's text in one call (far faster than per block)."""

    def __init__(self) -> None:
        self.texts: dict[str, list[str]] = {"system": [], "tools": [], "messages": [], "tool_results": []}
        self.fixed: dict[str, int] = dict.fromkeys(self.texts, 0)

    def text(self, part: str, text: str) -> None:
        if text:
            self.texts[part].append(text)

    def json(self, part: str, value: object) -> None:
        self.texts[part].append(orjson.dumps(value).decode())

    def tool(self, tool: object) -> None:
        if not isinstance(tool, dict):
            return
        self.fixed["tools"] += TOOL_OVERHEAD
        if "input_schema" in tool:
            self.text("tools", str(tool.get("name", "")))
            self.text("tools", str(tool.get("description", "")))
            self.json("tools", tool["input_schema"])
        else:
            # Server tools ({"type": "web_search_20250305", "name": ...}): their definition is all we have.
            self.json("tools", {k: v for k, v in tool.items() if k != "cache_control"})

    def block(self, part: str, block: object) -> None:
        if isinstance(block, str):
            self.text(part, block)
            return
        if not isinstance(block, dict):
            return
        self.fixed[part] += BLOCK_OVERHEAD
        match block.get("type"):
            case "text":
                self.text(part, str(block.get("text", "")))
            case "image":
                self.fixed[part] += image_tokens(block.get("source"))
            case "document":
                self._document(part, block)
            case "tool_use" | "server_tool_use":
                self.text(part, str(block.get("name", "")))
                self.json(part, block.get("input", {}))
            case "tool_result":
                self._tool_result(block)
            case "thinking":
                self.text(part, str(block.get("thinking", "")))
            case "redacted_thinking":
                pass  # opaque encrypted data: its token cost is not knowable here
            case _:
                # Newer block kinds (search_result, tool_reference, web_search_tool_result, ...): count
                # their JSON, a fair upper estimate of what the model sees.
                self.json(part, {k: v for k, v in block.items() if k != "cache_control"})

    def _tool_result(self, block: JSONDict) -> None:
        content = block.get("content")
        if isinstance(content, str):
            self.text("tool_results", content)
        elif isinstance(content, list):
            for item in content:
                self.block("tool_results", item)

    def _document(self, part: str, block: JSONDict) -> None:
        source = block.get("source")
        if isinstance(source, dict) and source.get("type") == "text":
            self.text(part, str(source.get("data", "")))
        elif isinstance(source, dict) and source.get("type") == "content":
            for item in source.get("content") or []:
                self.block(part, item)
        else:
            self.fixed[part] += DOCUMENT_TOKENS_UNKNOWN

    def totals(self) -> dict[str, int]:
        encoding = _encoding()
        totals: dict[str, int] = {}
        for part, texts in self.texts.items():
            # Joined with newlines: one FFI call per part; the separators cost a token each, like the
            # block boundaries they stand for.
            tokens = _encoded_length(encoding, "\n".join(texts)) if texts else 0
            totals[part] = tokens + self.fixed[part]
        return totals


def image_tokens(source: object) -> int:
    """Anthropic's image estimate from the pixel size of a base64 PNG/JPEG/GIF; else a flat cost."""
    if not isinstance(source, dict) or source.get("type") != "base64":
        return IMAGE_TOKENS_UNKNOWN
    data = source.get("data")
    if not isinstance(data, str):
        return IMAGE_TOKENS_UNKNOWN
    size = image_size(data)
    if size is None:
        return IMAGE_TOKENS_UNKNOWN
    width, height = size
    scale = min(1.0, _IMAGE_LONG_EDGE / max(width, height))
    tokens = math.ceil((width * scale) * (height * scale) / 750)
    return max(1, min(tokens, IMAGE_TOKENS_MAX))


def image_size(data_b64: str) -> tuple[int, int] | None:
    """(width, height) read from the first bytes of base64 image data, or None."""
    head = _b64_prefix(data_b64, _PNG_B64_PREFIX)
    if head is None:
        return None
    if head.startswith(b"\x89PNG\r\n\x1a\n") and head[12:16] == b"IHDR":
        width, height = struct.unpack(">II", head[16:24])
        return (width, height) if width and height else None
    if head[:6] in (b"GIF87a", b"GIF89a"):
        width, height = struct.unpack("<HH", head[6:10])
        return (width, height) if width and height else None
    if head.startswith(b"\xff\xd8"):
        jpeg = _b64_prefix(data_b64, _JPEG_B64_PREFIX)
        return _jpeg_size(jpeg) if jpeg else None
    return None


def _b64_prefix(data_b64: str, length: int) -> bytes | None:
    chunk = data_b64[:length]
    chunk = chunk[: len(chunk) - len(chunk) % 4]
    try:
        return base64.b64decode(chunk, validate=False)
    except (binascii.Error, ValueError):
        return None


# Start-of-frame markers carry the dimensions (not DHT C4, JPG C8, DAC CC).
_SOF_MARKERS = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    """Walk JPEG segments to the first SOF marker: https://www.w3.org/Graphics/JPEG/itu-t81.pdf B.1.1.3."""
    pos = 2
    end = len(data)
    while pos + 4 <= end:
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):  # standalone markers: no length
            pos += 2
            continue
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        if marker in _SOF_MARKERS:
            if pos + 9 > end:
                return None
            height, width = struct.unpack(">HH", data[pos + 5 : pos + 9])
            return (width, height) if width and height else None
        pos += 2 + length
    return None
