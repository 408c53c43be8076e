"""Anthropic Messages <-> Gemini's own API (generateContent, streamGenerateContent?alt=sse).

request.py and contents.py build the upstream request (schema.py cleans tool schemas); response.py
reads replies and errors; stream.py is the SSE state machine. This module ties them into the `Dialect`.
"""

from __future__ import annotations

from ..base import Capabilities, TranslationError, UpstreamError
from ..types import JSONDict, Message, MessagesRequest, Target, Translation, UpstreamRequest
from . import response
from .request import build_request, endpoint
from .response import MalformedFunctionCall
from .stream import GeminiStreamTranslator

__all__ = ["DIALECT", "GeminiDialect", "GeminiStreamTranslator", "MalformedFunctionCall"]


class GeminiDialect:
    name = "gemini"
    # Gemini counts exactly (`:countTokens`); its key header is never recorded.
    capabilities = Capabilities(counts_tokens=True, secret_headers=frozenset({"x-goog-api-key"}))

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
        """`:countTokens` over the same contents, system instruction and tools a message would send."""
        try:
            translation = build_request(
                {**request, "max_tokens": request.get("max_tokens") or 1, "stream": False},
                target,
                message_id="msg_count",
                client_headers=client_headers,
            )
        except TranslationError:
            return None  # a partial conversation Gemini would refuse: counted locally instead
        sent = translation.upstream
        model = target.model or str(request.get("model"))
        inner = {k: v for k, v in sent.body.items() if k in ("contents", "systemInstruction", "tools")}
        url = endpoint(target.base_url, model, stream=False).removesuffix(":generateContent") + ":countTokens"
        body = {"generateContentRequest": {"model": f"models/{model.removeprefix('models/')}", **inner}}
        return UpstreamRequest(method="POST", url=url, headers=sent.headers, body=body, stream=False)

    def parse_count_tokens(self, body: JSONDict) -> JSONDict:
        total = body.get("totalTokens")
        return {"input_tokens": total if isinstance(total, int) else 0}

    def parse_response(self, body: JSONDict, translation: Translation) -> Message:
        return response.parse_response(body, translation)

    def stream_translator(self, translation: Translation) -> GeminiStreamTranslator:
        return GeminiStreamTranslator(translation)

    def parse_error(self, status: int, body: bytes, headers: dict[str, str]) -> UpstreamError:
        return response.parse_error(status, body, headers)


DIALECT = GeminiDialect()
