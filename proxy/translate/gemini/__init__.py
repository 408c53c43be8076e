"""Anthropic Messages <-> Gemini's own API (generateContent, streamGenerateContent?alt=sse).

request.py and contents.py build the upstream request (schema.py cleans tool schemas); response.py
reads replies and errors; stream.py is the SSE state machine. This module ties them into the `Dialect`.
"""

from __future__ import annotations

from ..base import UpstreamError
from ..types import JSONDict, Message, MessagesRequest, Target, Translation
from . import response
from .request import build_request
from .response import MalformedFunctionCall
from .stream import GeminiStreamTranslator

__all__ = ["DIALECT", "GeminiDialect", "GeminiStreamTranslator", "MalformedFunctionCall"]


class GeminiDialect:
    name = "gemini"
    # Header names whose values are secrets, for the record (tape.py already matches any "key").
    secret_headers = frozenset({"x-goog-api-key"})

    def build_request(
        self,
        request: MessagesRequest,
        target: Target,
        *,
        message_id: str,
        client_headers: dict[str, str],
    ) -> Translation:
        return build_request(request, target, message_id=message_id, client_headers=client_headers)

    def parse_response(self, body: JSONDict, translation: Translation) -> Message:
        return response.parse_response(body, translation)

    def stream_translator(self, translation: Translation) -> GeminiStreamTranslator:
        return GeminiStreamTranslator(translation)

    def parse_error(self, status: int, body: bytes, headers: dict[str, str]) -> UpstreamError:
        return response.parse_error(status, body, headers)


DIALECT = GeminiDialect()
