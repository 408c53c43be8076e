"""Issue #12 over real HTTP: the anthropic SDK sends documents, search results and strict tools; the
scripted OpenAI server (which refuses what OpenAI refuses) receives them converted or as files, and the
record lists every conversion and loss."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import anthropic
import pytest

from tests.conftest import ROOT, Server, start_server, stop_server
from tests.fakes.openai_upstream import FakeOpenAI, completion
from tests.pdfs import pdf_block

FILE_INPUT_CONFIG = """
[[providers]]
name = "files"
dialect = "openai"
base_url = "{url}"
model_settings = {{ "*" = {{ options = ["file_input"] }} }}

[[rules]]
name = "everything"
provider = "files"
model = "pdf-model"
default = true
"""


@pytest.fixture
def client(server: Server) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=server.url, api_key="sk-client", max_retries=0)


@pytest.fixture(scope="module")
def files_server(fake_openai: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server whose only provider takes PDFs as files (its models' `file_input` option)."""
    tmp = tmp_path_factory.mktemp("files")
    data_dir, config = tmp / "data", tmp / "routes.toml"
    config.write_text(FILE_INPUT_CONFIG.format(url=fake_openai.url))
    env = {**os.environ, "SWITCHBOARD_DATA_DIR": str(data_dir)}
    for command in (["migrate", "-v", "0"], ["routes", "import", str(config)]):
        subprocess.run(
            [sys.executable, "manage.py", *command], cwd=ROOT, env=env, check=True, capture_output=True
        )
    srv = start_server(tmp, {"SWITCHBOARD_DATA_DIR": str(data_dir)})
    yield srv
    stop_server(srv)


def changes_of(server: Server, request_id: str | None) -> list[dict[str, str]]:
    assert request_id is not None
    [row] = server.exchanges(limit=5, request_id=request_id)
    assert row["status"] == "ok", row["error_message"]
    return row["changes"]


def read_pdf_turn(block: dict[str, Any]) -> list[Any]:
    call = {"type": "tool_use", "id": "toolu_01Read", "name": "Read", "input": {"file_path": "/tmp/a.pdf"}}
    result = {"type": "tool_result", "tool_use_id": "toolu_01Read", "content": [block]}
    return [{"role": "user", "content": "what does the invoice say?"},
            {"role": "assistant", "content": [call]}, {"role": "user", "content": [result]}]  # fmt: skip


def test_a_pdf_reaches_a_backend_without_file_input_as_its_text_and_the_record_says_so(
    client: anthropic.Anthropic, server: Server, upstream: FakeOpenAI
) -> None:
    content = [pdf_block("Invoice 42 total 99 EUR", title="invoice.pdf"), {"type": "text", "text": "Total?"}]
    message = client.messages.create(model="claude-sonnet-4-5", max_tokens=50,
                                     messages=[{"role": "user", "content": content}])  # type: ignore[list-item]  # fmt: skip
    assert upstream.rejections == []
    sent = upstream.requests[-1]["messages"][-1]
    assert sent == {"role": "user", "content": "Document: invoice.pdf\n\nInvoice 42 total 99 EUR\n\nTotal?"}
    assert [c["kind"] for c in changes_of(server, message._request_id)] == ["document_converted"]


def test_claude_codes_read_of_a_pdf_reaches_the_backend_as_the_tool_results_text(
    client: anthropic.Anthropic, server: Server, upstream: FakeOpenAI
) -> None:
    message = client.messages.create(model="claude-sonnet-4-5", max_tokens=50,
                                     messages=read_pdf_turn(pdf_block("Invoice 42")))  # type: ignore[arg-type]  # fmt: skip
    assert upstream.rejections == []
    tool_message = upstream.requests[-1]["messages"][-1]
    assert tool_message["role"] == "tool" and tool_message["content"] == "Document\n\nInvoice 42"
    assert "document_converted" in [c["kind"] for c in changes_of(server, message._request_id)]


def test_a_pdf_reaches_a_backend_with_file_input_as_a_file_part(
    files_server: Server, upstream: FakeOpenAI
) -> None:
    client = anthropic.Anthropic(base_url=files_server.url, api_key="sk-client", max_retries=0)
    block = pdf_block("Invoice 42", title="invoice.pdf")
    message = client.messages.create(model="claude-sonnet-4-5", max_tokens=50,
                                     messages=read_pdf_turn(block))  # type: ignore[arg-type]  # fmt: skip
    assert upstream.rejections == []
    user = upstream.requests[-1]["messages"][-1]
    data_url = "data:application/pdf;base64," + block["source"]["data"]
    assert user["content"][1] == {"type": "file", "file": {"filename": "invoice.pdf", "file_data": data_url}}
    assert [c["kind"] for c in changes_of(files_server, message._request_id)] == ["tool_result_file_moved"]


def test_a_search_result_reaches_the_backend_as_text_with_source_and_title(
    client: anthropic.Anthropic, server: Server, upstream: FakeOpenAI
) -> None:
    result = {"type": "search_result", "source": "https://docs.example/install", "title": "Install",
              "content": [{"type": "text", "text": "pip install switchboard"}]}  # fmt: skip
    message = client.messages.create(model="claude-sonnet-4-5", max_tokens=50,
                                     messages=[{"role": "user", "content": [result]}])  # type: ignore[list-item]  # fmt: skip
    assert upstream.requests[-1]["messages"][-1]["content"] == (
        "Search result: Install\nSource: https://docs.example/install\n\npip install switchboard"
    )
    assert [c["kind"] for c in changes_of(server, message._request_id)] == ["document_converted"]


def test_a_strict_tool_reaches_the_backend_as_a_strict_function(
    client: anthropic.Anthropic, upstream: FakeOpenAI
) -> None:
    schema = {"type": "object", "properties": {"x": {"type": "string"}}, "required": ["x"],
              "additionalProperties": False}  # fmt: skip
    upstream.script(completion("ok"))
    tools = [{"name": "Emit", "input_schema": schema, "strict": True}]
    client.messages.create(model="claude-sonnet-4-5", max_tokens=50,
                           messages=[{"role": "user", "content": "hi"}], tools=tools)  # type: ignore[arg-type]  # fmt: skip
    assert upstream.rejections == []
    assert upstream.requests[-1]["tools"][0]["function"]["strict"] is True


def test_server_tool_results_in_the_history_are_dropped_as_lost_content_and_the_turn_goes_on(
    client: anthropic.Anthropic, server: Server, upstream: FakeOpenAI
) -> None:
    history = [
        {"role": "user", "content": "search the web for switchboard"},
        {"role": "assistant", "content": [
            {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {"query": "x"}},
            {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_1", "content": []},
            {"type": "text", "text": "Nothing found."}]},
        {"role": "user", "content": "ok, thanks"},
    ]  # fmt: skip
    message = client.messages.create(model="claude-sonnet-4-5", max_tokens=50, messages=history)  # type: ignore[arg-type]
    assert upstream.rejections == []
    assert upstream.requests[-1]["messages"][1] == {"role": "assistant", "content": "Nothing found."}
    dropped = [c["detail"] for c in changes_of(server, message._request_id) if c["kind"] == "content_dropped"]
    assert dropped == [
        "messages.1.content.0: server_tool_use block",
        "messages.1.content.1: web_search_tool_result block",
    ]
