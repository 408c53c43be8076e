"""The scripted upstream must be faithful: the real openai SDK parses what it sends."""

from __future__ import annotations

import openai
import pytest

from tests.fakes.openai_upstream import FakeOpenAI, completion, error, text_stream, tool_stream


@pytest.fixture
def sdk(upstream: FakeOpenAI) -> openai.OpenAI:
    return openai.OpenAI(base_url=upstream.url, api_key="sk-x", max_retries=0)


def test_fake_completion_parses_with_the_openai_sdk(sdk: openai.OpenAI, upstream: FakeOpenAI) -> None:
    upstream.script(completion("hi", prompt=3, completion_tokens=1, cached=2))
    result = sdk.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    assert result.choices[0].message.content == "hi"
    assert result.usage is not None and result.usage.prompt_tokens_details is not None
    assert result.usage.prompt_tokens_details.cached_tokens == 2


def test_fake_tool_stream_accumulates_with_the_openai_sdk(sdk: openai.OpenAI, upstream: FakeOpenAI) -> None:
    upstream.script(tool_stream([("call_1", "Read", ['{"file_path":', ' "a"}'])]))
    with sdk.chat.completions.stream(model="m", messages=[{"role": "user", "content": "x"}]) as stream:
        for _ in stream:
            pass
        final = stream.get_final_completion()
    call = final.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert call.function.name == "Read" and call.function.arguments == '{"file_path": "a"}'  # type: ignore[union-attr]
    assert final.choices[0].finish_reason == "tool_calls"


def test_fake_text_stream_reports_usage_in_the_last_chunk(sdk: openai.OpenAI, upstream: FakeOpenAI) -> None:
    upstream.script(text_stream("a", "b", prompt=9, completion=2))
    chunks = list(
        sdk.chat.completions.create(
            model="m",
            messages=[{"role": "user", "content": "x"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "ab"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 2


def test_fake_error_raises_the_openai_sdk_error(sdk: openai.OpenAI, upstream: FakeOpenAI) -> None:
    upstream.script(error(429, "slow"))
    with pytest.raises(openai.RateLimitError):
        sdk.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
