"""Anthropic `document` and `search_result` blocks -> Chat Completions content parts.

Pure (pypdf is a parser, no IO). A PDF goes as the backend's file input where it has one
(`{"type": "file", "file": {"filename", "file_data": "data:application/pdf;base64,…"}}`: PDFs only, no
URLs, https://developers.openai.com/api/docs/guides/file-inputs), otherwise as its text, extracted with
pypdf and recorded as a `document_converted` change; text and content documents go as text with their
title.
A source no Chat Completions server can read (a URL, a Files API id) is dropped: `content_dropped`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import threading
from collections import OrderedDict
from urllib.parse import urlsplit

from ..base import TranslationError
from ..types import Change, JSONDict, Target

FILE_INPUT = "file_input"  # model option: the backend takes PDFs as `file` parts
NO_FILE_INPUT = "no_file_input"
# Hosts known to take `file` parts by default; any other server is asked for text unless its model
# has the `file_input` option (many OpenAI-compatible servers refuse an unknown part type with a 400).
_FILE_INPUT_HOSTS = frozenset({"api.openai.com"})


def has_file_input(target: Target) -> bool:
    """Whether PDFs go to this target as files: its model's option, else OpenAI's own API only."""
    if FILE_INPUT in target.options:
        return True
    if NO_FILE_INPUT in target.options:
        return False
    return urlsplit(target.base_url).hostname in _FILE_INPUT_HOSTS


def _header(kind: str, block: JSONDict) -> str:
    title = block.get("title")
    context = block.get("context")
    lines = [f"{kind}: {title}" if isinstance(title, str) and title else kind]
    if isinstance(context, str) and context:
        lines.append(f"Context: {context}")
    return "\n".join(lines)


def document_parts(block: JSONDict, *, path: str, target: Target) -> tuple[list[JSONDict], Change | None]:
    """A validated document block as content parts (text, image_url, file), and the change it made."""
    source: JSONDict = block["source"]
    kind = source.get("type")
    match kind:
        case "base64":
            data = source.get("data")
            if source.get("media_type") != "application/pdf":
                raise TranslationError(f"{path}.source.media_type: must be 'application/pdf'")
            if not isinstance(data, str):
                raise TranslationError(f"{path}.source.data: Field required")
            if has_file_input(target):
                title = block.get("title")
                name = title if isinstance(title, str) and title else "document.pdf"
                parts: list[JSONDict] = [
                    {
                        "type": "file",
                        "file": {"filename": name, "file_data": f"data:application/pdf;base64,{data}"},
                    }
                ]
                if isinstance(block.get("context"), str) and block["context"]:
                    parts.insert(0, {"type": "text", "text": _header("Document", block)})
                return parts, None
            text, pages = pdf_text(data, path=f"{path}.source.data")
            detail = f"{path}: PDF ({pages} page(s)) -> its text (the backend takes no PDF files)"
            return [_text(_header("Document", block), text)], Change("document_converted", detail)
        case "text":
            data = source.get("data")
            if not isinstance(data, str):
                raise TranslationError(f"{path}.source.data: Field required")
            return [_text(_header("Document", block), data)], Change("document_converted", f"{path}: text")
        case "content":
            parts = _content_parts(source.get("content"), path=f"{path}.source.content")
            parts.insert(0, {"type": "text", "text": _header("Document", block)})
            return parts, Change("document_converted", f"{path}: content")
        case _:  # url, file: nothing a Chat Completions server can fetch
            return [], Change("content_dropped", f"{path}: document with a {kind} source")


def search_result_part(block: JSONDict) -> JSONDict:
    """A validated search_result block as one text part: its title, its source, its texts."""
    header = f"Search result: {block['title']}\nSource: {block['source']}"
    return _text(header, "\n\n".join(b["text"] for b in block["content"]))


def _text(header: str, body: str) -> JSONDict:
    return {"type": "text", "text": f"{header}\n\n{body}" if body else header}


def _content_parts(content: object, *, path: str) -> list[JSONDict]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, list):
        raise TranslationError(f"{path}: must be a string or a list of text and image blocks")
    parts: list[JSONDict] = []
    for i, item in enumerate(content):
        ipath = f"{path}.{i}"
        kind = item.get("type") if isinstance(item, dict) else None
        if kind == "text" and isinstance(item.get("text"), str):
            parts.append({"type": "text", "text": item["text"]})
        elif (
            kind == "image"
            and isinstance(item.get("source"), dict)
            and item["source"].get("type") == "base64"
        ):
            source = item["source"]
            url = f"data:{source.get('media_type')};base64,{source.get('data')}"
            parts.append({"type": "image_url", "image_url": {"url": url}})
        else:
            raise TranslationError(f"{ipath}: must be a text block or a base64 image block")
    return parts


# Claude Code sends a conversation's PDFs again with every turn: each is read once. Keyed by a digest
# of the data, so the cache holds texts, not the (large) base64 strings.
_PDF_CACHE: OrderedDict[bytes, tuple[str, int]] = OrderedDict()
_PDF_CACHE_SIZE = 64
_PDF_CACHE_LOCK = threading.Lock()  # a request with documents is translated on a worker thread


def pdf_text(data: str, *, path: str) -> tuple[str, int]:
    """(text, pages) of a base64 PDF; TranslationError naming `path` when it is not a readable PDF."""
    key = hashlib.sha256(data.encode("ascii", errors="replace")).digest()
    with _PDF_CACHE_LOCK:
        if key in _PDF_CACHE:
            _PDF_CACHE.move_to_end(key)
            return _PDF_CACHE[key]
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise TranslationError(f"{path}: not valid base64 ({exc})") from exc
    from pypdf import PdfReader  # ~60 ms to import: only once a PDF needs reading

    try:
        reader = PdfReader(io.BytesIO(raw))
        if reader.is_encrypted:
            reader.decrypt("")  # PDFs "encrypted" with an empty user password open as any viewer opens them
        texts = [page.extract_text() or "" for page in reader.pages]
    except Exception as exc:  # pypdf raises many kinds on malformed files; each means "unreadable"
        raise TranslationError(f"{path}: not a readable PDF ({type(exc).__name__}: {exc})"[:500]) from exc
    result = ("\n\n".join(t.strip() for t in texts if t.strip()), len(texts))
    with _PDF_CACHE_LOCK:
        _PDF_CACHE[key] = result
        if len(_PDF_CACHE) > _PDF_CACHE_SIZE:
            _PDF_CACHE.popitem(last=False)
    return result
