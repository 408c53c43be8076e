"""Issue #12: documents, search results and strict tools on the Chat Completions dialect: each passed
on, converted (and said), or refused naming the field; never lost without a word."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from proxy.translate.base import TranslationError
from proxy.translate.openai_chat.request import build_request
from proxy.translate.types import Target, Translation
from tests.pdfs import pdf_block

COMPATIBLE = Target(provider="local", dialect="openai", base_url="http://127.0.0.1:8000/v1", model="qwen3")
OPENAI = Target(provider="openai", dialect="openai", base_url="https://api.openai.com/v1", model="gpt-4o")


def translate(content: list[dict[str, Any]], target: Target = COMPATIBLE, **extra: Any) -> Translation:
    request = {"model": "claude-sonnet-4-5", "max_tokens": 100,
               "messages": [{"role": "user", "content": content}], **extra}  # fmt: skip
    return build_request(request, target, message_id="msg_1", client_headers={})


def sent(translation: Translation) -> list[dict[str, Any]]:
    return translation.upstream.body["messages"]


def changes(translation: Translation) -> list[tuple[str, str]]:
    return [(c.kind, c.detail) for c in translation.changes]


def read_turn(*result: dict[str, Any]) -> list[dict[str, Any]]:
    """Claude Code's Read on a file: the call, then its tool_result with `result` as content."""
    call = {"type": "tool_use", "id": "toolu_1", "name": "Read", "input": {"file_path": "/tmp/a.pdf"}}
    return [
        {"role": "user", "content": "read it"},
        {"role": "assistant", "content": [call]},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": list(result)}],
        },
    ]


def test_a_pdf_goes_to_a_server_without_file_input_as_its_text_with_its_title() -> None:
    translation = translate([{"type": "text", "text": "Summarise"}, pdf_block("Hello from page one",
                             "Second page here", title="report.pdf")])  # fmt: skip
    assert sent(translation) == [{"role": "user", "content": (
        "Summarise\n\nDocument: report.pdf\n\nHello from page one\n\nSecond page here")}]  # fmt: skip
    assert changes(translation) == [
        (
            "document_converted",
            "messages.0.content.1: PDF (2 page(s)) -> its text (the backend takes no PDF files)",
        )
    ]


def test_a_pdf_goes_to_openais_own_api_as_a_file_part_unchanged() -> None:
    block = pdf_block("Hello", title="report.pdf")
    translation = translate([block, {"type": "text", "text": "Summarise"}], OPENAI)
    assert sent(translation) == [{"role": "user", "content": [
        {"type": "file", "file": {"filename": "report.pdf",
                                  "file_data": "data:application/pdf;base64," + block["source"]["data"]}},
        {"type": "text", "text": "Summarise"},
    ]}]  # fmt: skip
    assert changes(translation) == []


@pytest.mark.parametrize(
    ("target", "as_file"),
    [
        (Target(provider="r", dialect="openai", base_url="https://openrouter.ai/api/v1", model="m",
                options=frozenset({"file_input"})), True),
        (Target(provider="o", dialect="openai", base_url="https://api.openai.com/v1", model="m",
                options=frozenset({"no_file_input"})), False),
    ],
)  # fmt: skip
def test_a_models_file_input_option_decides_over_the_host(target: Target, as_file: bool) -> None:
    content = sent(translate([pdf_block("Hello")], target))[0]["content"]
    assert (isinstance(content, list) and content[0]["type"] == "file") is as_file


def test_text_and_content_documents_go_as_text_with_title_and_context() -> None:
    text_doc = {
        "type": "document",
        "title": "notes",
        "context": "from the wiki",
        "source": {"type": "text", "media_type": "text/plain", "data": "line one"},
    }
    content_doc = {
        "type": "document",
        "source": {"type": "content", "content": [{"type": "text", "text": "a"}]},
    }
    translation = translate([text_doc, content_doc])  # fmt: skip
    assert (
        sent(translation)[0]["content"]
        == "Document: notes\nContext: from the wiki\n\nline one\n\nDocument\n\na"
    )
    assert [kind for kind, _ in changes(translation)] == ["document_converted", "document_converted"]


@pytest.mark.parametrize(
    "source", [{"type": "url", "url": "https://x/a.pdf"}, {"type": "file", "file_id": "f_1"}]
)
def test_a_document_no_backend_here_can_fetch_is_dropped_as_lost_content(source: dict) -> None:
    translation = translate([{"type": "text", "text": "hi"}, {"type": "document", "source": source}])
    assert sent(translation) == [{"role": "user", "content": "hi"}]
    assert changes(translation) == [
        ("content_dropped", f"messages.0.content.1: document with a {source['type']} source")
    ]


def test_claude_codes_read_of_a_pdf_reaches_the_model_as_the_tool_messages_text() -> None:
    request = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 100,
        "messages": read_turn(pdf_block("Invoice 42")),
    }
    translation = build_request(request, COMPATIBLE, message_id="msg_1", client_headers={})
    tool_message = sent(translation)[2]
    assert tool_message["role"] == "tool" and tool_message["content"] == "Document\n\nInvoice 42"
    assert changes(translation)[0][0] == "document_converted"


def test_a_pdf_read_by_a_tool_moves_to_the_user_message_as_a_file_where_the_backend_takes_files() -> None:
    request = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 100,
        "messages": read_turn(pdf_block("Invoice 42")),
    }
    translation = build_request(request, OPENAI, message_id="msg_1", client_headers={})
    tool_message, user = sent(translation)[2:]
    assert tool_message["content"] == ""
    assert user["content"][0] == {"type": "text", "text": "Document from tool result toolu_1:"}
    assert user["content"][1]["type"] == "file"
    assert [kind for kind, _ in changes(translation)] == ["tool_result_file_moved"]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("not base64!", "messages.0.content.0.source.data: not valid base64"),
        (
            base64.b64encode(b"%PDF-1.4 garbage").decode(),
            "messages.0.content.0.source.data: not a readable PDF",
        ),
    ],
)
def test_a_pdf_that_cannot_be_read_is_refused_naming_the_field(data: str, message: str) -> None:
    block = {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": data}}
    with pytest.raises(TranslationError) as info:
        translate([block])
    assert info.value.status == 400 and info.value.message.startswith(message)


def test_search_results_go_as_text_with_their_source_and_title_in_user_turns_and_tool_results() -> None:
    texts = [{"type": "text", "text": "pip install x"}, {"type": "text", "text": "then run"}]
    result = {
        "type": "search_result",
        "source": "https://docs.example/a",
        "title": "Install",
        "content": texts,
    }
    translation = translate([result])
    expected = "Search result: Install\nSource: https://docs.example/a\n\npip install x\n\nthen run"
    assert sent(translation)[0]["content"] == expected
    assert changes(translation) == [("document_converted", "messages.0.content.0: search result -> text")]

    request = {"model": "claude-sonnet-4-5", "max_tokens": 100, "messages": read_turn(result)}
    translation = build_request(request, COMPATIBLE, message_id="msg_1", client_headers={})
    assert sent(translation)[2]["content"] == expected


def test_a_strict_tool_is_sent_as_a_strict_function() -> None:
    schema = {"type": "object", "properties": {"x": {"type": "string"}}, "required": ["x"],
              "additionalProperties": False}  # fmt: skip
    tools = [
        {"name": "Emit", "input_schema": schema, "strict": True},
        {"name": "Other", "input_schema": schema},
    ]
    translation = translate([{"type": "text", "text": "hi"}], tools=tools)
    functions = [t["function"] for t in translation.upstream.body["tools"]]
    assert functions[0]["strict"] is True and "strict" not in functions[1]
    assert not [c for c in changes(translation) if "strict" in c[1]]
