"""Anthropic Messages <-> OpenAI Chat Completions: OpenAI, DeepSeek, OpenRouter, Ollama, vLLM, SGLang, Kimi…

request.py builds the upstream request; response.py reads replies and errors; stream.py is the SSE
state machine. This module only ties them into the `Dialect` the registry lists.
"""

from __future__ import annotations

from ..base import Capabilities, UpstreamError
from ..types import JSONDict, Message, MessagesRequest, Target, Translation, UpstreamRequest
from . import response
from .request import build_request
from .stream import OpenAIStreamTranslator

__all__ = ["DIALECT", "OpenAIChatDialect", "OpenAIStreamTranslator"]


class OpenAIChatDialect:
    name = "openai"
    capabilities = Capabilities(secret_headers=frozenset({"authorization"}))

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
        return None  # Chat Completions has no counting endpoint: counted locally

    def parse_count_tokens(self, body: JSONDict) -> JSONDict:
        raise AssertionError("never called: build_count_tokens_request returns None")

    def parse_response(self, body: JSONDict, translation: Translation) -> Message:
        return response.parse_response(body, translation)

    def stream_translator(self, translation: Translation) -> OpenAIStreamTranslator:
        return OpenAIStreamTranslator(translation)

    def parse_error(self, status: int, body: bytes, headers: dict[str, str]) -> UpstreamError:
        return response.parse_error(status, body, headers)


DIALECT = OpenAIChatDialect()
