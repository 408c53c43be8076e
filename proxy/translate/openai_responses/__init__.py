"""Anthropic Messages <-> the OpenAI Responses API (`POST {base_url}/responses`).

For the models served only there (gpt-5-codex, gpt-5-pro, codex-mini) and for OpenAI reasoning models'
summaries and encrypted reasoning, which Chat Completions does not return. request.py and items.py build
the upstream request; response.py reads replies; stream.py is the SSE state machine. Error replies have
Chat Completions' shape (`{"error": {"message", "type", "param", "code"}}`): upstream_errors reads them.
"""

from __future__ import annotations

from .. import upstream_errors
from ..base import Capabilities, UpstreamError
from ..types import JSONDict, Message, MessagesRequest, Target, Translation, UpstreamRequest
from . import response
from .request import build_count_request, build_request
from .stream import ResponsesStreamTranslator

__all__ = ["DIALECT", "OpenAIResponsesDialect", "ResponsesStreamTranslator"]


class OpenAIResponsesDialect:
    name = response.DIALECT_NAME
    # counts_tokens: OpenAI's own API counts exactly (POST /responses/input_tokens); others locally.
    capabilities = Capabilities(counts_tokens=True, secret_headers=frozenset({"authorization"}))

    def build_request(
        self,
        request: MessagesRequest,
        target: Target,
        *,
        message_id: str,
        client_headers: dict[str, str],
    ) -> Translation:
        return build_request(request, target, message_id=message_id, client_headers=client_headers)

    def build_count_tokens_request(
        self, request: MessagesRequest, target: Target, *, client_headers: dict[str, str]
    ) -> UpstreamRequest | None:
        return build_count_request(request, target, client_headers=client_headers)

    def parse_count_tokens(self, body: JSONDict) -> JSONDict:
        """`{"object": "response.input_tokens", "input_tokens": n}` -> Anthropic's count."""
        counted = body.get("input_tokens")
        if isinstance(counted, bool) or not isinstance(counted, int):
            raise UpstreamError(f"upstream sent a malformed token count: {str(body)[:200]!r}")
        return {"input_tokens": counted}

    def parse_response(self, body: JSONDict, translation: Translation) -> Message:
        return response.parse_response(body, translation)

    def stream_translator(self, translation: Translation) -> ResponsesStreamTranslator:
        return ResponsesStreamTranslator(translation)

    def parse_error(self, status: int, body: bytes, headers: dict[str, str]) -> UpstreamError:
        return upstream_errors.from_reply(status, body, headers)


DIALECT = OpenAIResponsesDialect()
