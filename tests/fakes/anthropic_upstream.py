"""A scripted Anthropic Messages server over real HTTP: replays recorded SSE transcripts byte for byte."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.fakes.openai_upstream import FakeOpenAI, Reply

SSE_FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "anthropic"


def sse_file(name: str, *, split: int = 0) -> Reply:
    """A recorded stream from tests/fixtures/anthropic/<name>.sse, optionally cut in `split`-byte pieces."""
    raw = (SSE_FIXTURES / f"{name}.sse").read_bytes()
    if split:
        return Reply(chunks=[raw[i : i + split] for i in range(0, len(raw), split)])
    return Reply(chunks=[frame + b"\n\n" for frame in raw.split(b"\n\n") if frame.strip()])


def message(text: str = "Hi from Anthropic", *, model: str = "claude-upstream", **usage: int) -> Reply:
    return Reply(
        body={
            "id": "msg_upstream01",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [{"type": "text", "text": text}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {
                "input_tokens": usage.get("input_tokens", 12),
                "output_tokens": usage.get("output_tokens", 4),
                "cache_read_input_tokens": usage.get("cache_read_input_tokens", 0),
                "cache_creation_input_tokens": 0,
            },
        }
    )


def anthropic_error(status: int, error_type: str, text: str, headers: dict[str, str] | None = None) -> Reply:
    return Reply(
        status=status,
        headers=headers or {},
        body={"type": "error", "error": {"type": error_type, "message": text}},
    )


class FakeAnthropic(FakeOpenAI):
    """`fake.url` is the base URL without /v1, as SWITCHBOARD_ANTHROPIC_URL takes it."""

    paths = ("/v1/messages", "/v1/messages/count_tokens")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def problem(self, body: Any) -> str | None:
        return None  # what passes through is the client's own request: Anthropic's checks are not ours

    def default_reply(self, body: dict[str, Any]) -> Reply:
        if "max_tokens" not in body:  # count_tokens
            return Reply(body={"input_tokens": 4242})
        return sse_file("text") if body.get("stream") else message()
