"""Anthropic Messages <-> the OpenAI Responses API (`POST {base_url}/responses`).

For the models served only there (gpt-5-codex, gpt-5-pro, codex-mini) and for OpenAI reasoning models'
summaries and encrypted reasoning, which Chat Completions does not return. request.py and items.py build
the upstream request; response.py reads replies; stream.py is the SSE state machine. Errors have Chat
Completions' shape (`{"error": {"message", "type", "param", "code"}}`), so they are read the same way.
"""

from __future__ import annotations

from ..base import UpstreamError
from ..openai_chat import response as chat_response
from ..types import JSONDict, Message, MessagesRequest, Target, Translation
from . import response
from .request import build_request
from .stream import ResponsesStreamTranslator

__all__ = ["DIALECT", "OpenAIResponsesDialect", "ResponsesStreamTranslator"]


class OpenAIResponsesDialect:
    name = response.DIALECT_NAME

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

    def stream_translator(self, translation: Translation) -> ResponsesStreamTranslator:
        return ResponsesStreamTranslator(translation)

    def parse_error(self, status: int, body: bytes, headers: dict[str, str]) -> UpstreamError:
        return chat_response.parse_error(status, body, headers)


DIALECT = OpenAIResponsesDialect()
