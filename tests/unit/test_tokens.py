"""The offline count_tokens estimate (translate/tokens.py)."""

from __future__ import annotations

import base64
import json
import struct
import zlib
from pathlib import Path
from typing import Any

import pytest

from proxy.translate import tokens
from proxy.translate.tokens import (
    BLOCK_OVERHEAD,
    IMAGE_TOKENS_MAX,
    IMAGE_TOKENS_UNKNOWN,
    MESSAGE_OVERHEAD,
    TOOL_OVERHEAD,
    TOOLS_PREAMBLE,
    count_breakdown,
    count_tokens,
    image_size,
    image_tokens,
)

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "claude-code"
REQUEST_FIXTURES = sorted(p.stem for p in FIXTURES.glob("*.json") if p.name != "headers.json")


def fixture(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def bpe_count(text: str) -> int:
    return len(tokens._encoding().encode_ordinary(text))


def png_b64(width: int, height: int) -> str:
    """A real (tiny-bodied) PNG header: signature, IHDR chunk with its CRC, then IEND."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    iend = struct.pack(">I", 0) + b"IEND" + struct.pack(">I", zlib.crc32(b"IEND"))
    return base64.b64encode(b"\x89PNG\r\n\x1a\n" + chunk + iend).decode()


def jpeg_b64(width: int, height: int, app_padding: int = 20) -> str:
    """SOI, an APP1 segment (like EXIF) of `app_padding` bytes, a DQT-free SOF0, then EOI."""
    app1 = b"\xff\xe1" + struct.pack(">H", app_padding + 2) + b"E" * app_padding
    sof0 = b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, height, width, 1) + b"\x01\x11\x00"
    return base64.b64encode(b"\xff\xd8" + app1 + sof0 + b"\xff\xd9").decode()


def user(*blocks: Any) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": list(blocks)}]}


@pytest.mark.parametrize("name", REQUEST_FIXTURES)
def test_count_tokens_equals_sum_of_breakdown_for_every_claude_code_fixture(name):
    request = fixture(name)
    breakdown = count_breakdown(request)
    assert set(breakdown) == {"system", "tools", "messages", "tool_results"}
    assert count_tokens(request) == sum(breakdown.values())
    assert breakdown["messages"] > 0


def test_count_tokens_counts_the_big_read_fixture():
    # Speed is measured by the benchmark, not asserted here (wall-clock tests flake on shared CI cores).
    request = fixture("count_tokens")
    total = count_tokens(request)
    text = request["messages"][0]["content"]
    assert total == bpe_count(text) + MESSAGE_OVERHEAD


def test_count_tokens_of_plain_string_message_is_its_tokens_plus_overhead():
    assert count_tokens({"messages": [{"role": "user", "content": "hello world"}]}) == 2 + MESSAGE_OVERHEAD


def test_count_tokens_treats_special_token_text_as_plain_text():
    request = {"messages": [{"role": "user", "content": "<|endoftext|> and <|im_start|>"}]}
    assert count_tokens(request) > MESSAGE_OVERHEAD


def test_count_breakdown_puts_tool_definitions_under_tools_with_preamble():
    schema = {"type": "object", "properties": {"command": {"type": "string"}}}
    request = {"tools": [{"name": "Bash", "description": "Run a command", "input_schema": schema}]}
    text = "Bash\nRun a command\n" + json.dumps(schema, separators=(",", ":"))
    expected = TOOLS_PREAMBLE + TOOL_OVERHEAD + bpe_count(text)
    assert count_breakdown(request)["tools"] == expected


def test_count_breakdown_has_no_tool_cost_when_tools_are_empty():
    assert count_breakdown({"tools": [], "messages": []})["tools"] == 0


def test_count_breakdown_counts_system_string_and_blocks_alike():
    as_string = count_breakdown({"system": "You are Claude Code."})["system"]
    as_blocks = count_breakdown({"system": [{"type": "text", "text": "You are Claude Code."}]})["system"]
    assert as_blocks == as_string + BLOCK_OVERHEAD


def test_count_breakdown_counts_tool_use_name_and_input_json():
    block = {"type": "tool_use", "id": "toolu_1", "name": "Write", "input": {"file_path": "/tmp/x"}}
    request = {"messages": [{"role": "assistant", "content": [block]}]}
    expected = MESSAGE_OVERHEAD + BLOCK_OVERHEAD + bpe_count('Write\n{"file_path":"/tmp/x"}')
    assert count_breakdown(request)["messages"] == expected


def test_count_breakdown_puts_nested_tool_result_text_and_images_under_tool_results():
    image = {"type": "base64", "media_type": "image/png", "data": png_b64(750, 100)}
    result = {
        "type": "tool_result",
        "tool_use_id": "toolu_1",
        "content": [{"type": "text", "text": "file contents here"}, {"type": "image", "source": image}],
    }
    breakdown = count_breakdown(user(result))
    assert breakdown["tool_results"] == bpe_count("file contents here") + 2 * BLOCK_OVERHEAD + 100
    assert breakdown["messages"] == MESSAGE_OVERHEAD + BLOCK_OVERHEAD


def test_count_breakdown_counts_string_tool_result_content():
    result = {"type": "tool_result", "tool_use_id": "toolu_1", "content": "total 0"}
    assert count_breakdown(user(result))["tool_results"] == bpe_count("total 0")


def test_count_breakdown_counts_thinking_text_but_not_redacted_data():
    thinking = {"type": "thinking", "thinking": "Let me think about it.", "signature": "EqQB" * 50}
    redacted = {"type": "redacted_thinking", "data": "EmwKAhgBEgy" * 100}
    request = {"messages": [{"role": "assistant", "content": [thinking, redacted]}]}
    expected = MESSAGE_OVERHEAD + 2 * BLOCK_OVERHEAD + bpe_count("Let me think about it.")
    assert count_breakdown(request)["messages"] == expected


def test_count_tokens_counts_unknown_block_kinds_by_their_json():
    block = {"type": "search_result", "source": "https://example.org", "title": "t", "content": []}
    assert count_tokens(user(block)) > MESSAGE_OVERHEAD + BLOCK_OVERHEAD


# images


def test_image_tokens_uses_width_times_height_over_750_for_png():
    source = {"type": "base64", "media_type": "image/png", "data": png_b64(200, 200)}
    assert image_tokens(source) == 54  # ceil(40000 / 750)


def test_image_tokens_reads_jpeg_size_past_an_exif_segment():
    data = jpeg_b64(300, 250, app_padding=5000)
    assert image_size(data) == (300, 250)
    assert image_tokens({"type": "base64", "media_type": "image/jpeg", "data": data}) == 100


def test_image_tokens_reads_gif_size():
    data = base64.b64encode(b"GIF89a" + struct.pack("<HH", 75, 10) + b"\x00" * 20).decode()
    assert image_tokens({"type": "base64", "media_type": "image/gif", "data": data}) == 1


def test_image_tokens_caps_large_images_at_the_resize_limit():
    source = {"type": "base64", "media_type": "image/png", "data": png_b64(4000, 3000)}
    assert image_tokens(source) == IMAGE_TOKENS_MAX


def test_image_tokens_is_flat_when_image_is_a_url():
    assert image_tokens({"type": "url", "url": "https://example.org/a.png"}) == IMAGE_TOKENS_UNKNOWN


def test_image_tokens_is_flat_when_data_is_not_an_image():
    data = base64.b64encode(b"not an image at all, just bytes" * 4).decode()
    assert image_tokens({"type": "base64", "media_type": "image/webp", "data": data}) == IMAGE_TOKENS_UNKNOWN


def test_image_tokens_is_flat_when_base64_is_garbage():
    assert image_tokens({"type": "base64", "media_type": "image/png", "data": "%%%%"}) == IMAGE_TOKENS_UNKNOWN


def test_count_breakdown_counts_text_documents_and_flat_cost_for_pdfs():
    text_doc = {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "a b c"}}
    pdf_source = {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0x"}
    pdf = {"type": "document", "source": pdf_source}
    expected = MESSAGE_OVERHEAD + 2 * BLOCK_OVERHEAD + bpe_count("a b c") + tokens.DOCUMENT_TOKENS_UNKNOWN
    assert count_breakdown(user(text_doc, pdf))["messages"] == expected


USAGE_REQUEST = {
    "model": "claude-opus-4-8",
    "max_tokens": 100,
    "messages": [{"role": "user", "content": "Summarise the relay module in two sentences, please."}],
}


def test_usage_estimate_counts_with_the_encoder_when_it_is_loaded() -> None:
    tokens.warm_up()
    generated = "The relay reads the upstream stream and translates each event."
    assert tokens.usage_estimate(USAGE_REQUEST, generated) == (
        tokens.count_tokens(USAGE_REQUEST),
        tokens.count_text_tokens(generated),
    )


def test_usage_estimate_never_loads_the_encoder_for_a_fallback() -> None:
    # Loading it costs ~1 s of CPU and ~100 MB: a process that never counted does not pay that to estimate
    # one cut-short exchange. Lengths stand in: the request's JSON and the generated text.
    tokens._encoding.cache_clear()
    try:
        generated = "x" * 41
        request_chars = len(json.dumps(USAGE_REQUEST, separators=(",", ":")))
        assert tokens.usage_estimate(USAGE_REQUEST, generated) == (
            -(-request_chars * 10 // 44),  # 4.4 characters a token, rounded up
            11,  # 4 a token, rounded up
        )
        assert tokens.usage_estimate(None, "") == (0, 0)
        assert tokens._encoding.cache_info().currsize == 0  # still not loaded
    finally:
        tokens.warm_up()  # as the rest of the suite expects it


_ENCODER_CHECK = """
import json, sys
texts = json.load(sys.stdin)
import bpe_openai
stock = [len(bpe_openai.get_encoding('cl100k_base').encode_ordinary(t)) for t in texts]
from bpe_openai import registry
from proxy.translate import tokens
ours = [tokens.count_text_tokens(t) for t in texts]  # the same encoder object, its tables now dropped
ranks_left = registry._load_mergeable_ranks.cache_info().currsize
tables_left = len(tokens._encoding()._mergeable_ranks)
print(json.dumps({'stock': stock, 'ours': ours, 'ranks_left': ranks_left, 'tables_left': tables_left}))
"""


def test_the_encoder_counts_like_stock_bpe_openai_without_its_python_tables() -> None:
    # A fresh interpreter: the stock encoder counts the captured bodies' text, then ours (the Python-side
    # rank tables dropped, ~56 MB) must count every one the same.
    import subprocess
    import sys

    texts = [json.dumps(json.loads(path.read_text())) for path in sorted(FIXTURES.glob("*.json"))]
    texts += ["déjà vu ✓ 🤖", "<|endoftext|> is plain text here", "def f(x):\n\treturn x ** 2\n"]
    done = subprocess.run(
        [sys.executable, "-c", _ENCODER_CHECK],
        input=json.dumps(texts),
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["ours"] == result["stock"]
    assert result["ranks_left"] == 0 and result["tables_left"] == 0


def test_count_breakdown_counts_parts_over_the_encoders_single_call_limit() -> None:
    # Issue #12: a 20 MB request raised "Input too long to encode safely" (bpe-openai refuses one call
    # over 1,000,000 characters or 200,000 tokens).
    big = "hello world, " * 400_000  # 5.2 MB, ~1.2M tokens
    request: Any = {"model": "m", "messages": [{"role": "user", "content": big}], "system": "x" * 1_500_000}
    parts = count_breakdown(request)
    expected = bpe_count("hello world, " * 1000) * 400
    assert abs(parts["messages"] - MESSAGE_OVERHEAD - expected) < expected * 0.001
    assert parts["system"] > 1_500_000 / 16
    assert tokens.count_text_tokens(big) == parts["messages"] - MESSAGE_OVERHEAD


def test_text_of_more_tokens_than_characters_is_counted_in_smaller_slices() -> None:
    # Rare symbols take several tokens each: 150,000 of them are over the encoder's 200,000-token limit.
    text = "\U0001f9ff\u2e3b" * 300_000
    per_pair = bpe_count("\U0001f9ff\u2e3b" * 1000) / 1000
    assert abs(tokens.count_text_tokens(text) - per_pair * 300_000) < per_pair * 300
