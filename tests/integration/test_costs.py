"""Cost estimates per exchange: the provider's own prices win; the Claude equivalent is beside them."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import ROOT, Server, start_server, stop_server
from tests.fakes.openai_upstream import FakeOpenAI, completion

CONFIG = """
[[providers]]
name = "cheap"
dialect = "openai"
base_url = "{url}"
api_key_env = "OPENAI_API_KEY"
model_settings = {{ "house-model" = {{ input_price = 1.0, output_price = 2.0, cache_read_price = 0.5 }} }}

[[providers]]
name = "local"
dialect = "openai"
base_url = "{url}"
model_settings = {{ "*" = {{ input_price = 0, output_price = 0 }} }}

[[rules]]
name = "small"
provider = "local"
model = "qwen3-coder:30b"
conditions = {{ model = "haiku" }}

[[rules]]
name = "everything"
provider = "cheap"
model = "house-model"
default = true
"""


@pytest.fixture(scope="module")
def priced_server(fake_openai: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("priced")
    data_dir = tmp / "data"
    config = tmp / "routes.toml"
    config.write_text(CONFIG.format(url=fake_openai.url))
    env = {**os.environ, "SWITCHBOARD_DATA_DIR": str(data_dir), "OPENAI_API_KEY": "sk-priced"}
    for command in (["migrate", "-v", "0"], ["routes", "import", str(config)]):
        subprocess.run(
            [sys.executable, "manage.py", *command], cwd=ROOT, env=env, check=True, capture_output=True
        )
    srv = start_server(tmp, {"SWITCHBOARD_DATA_DIR": str(data_dir), "OPENAI_API_KEY": "sk-priced"})
    yield srv
    stop_server(srv)


def test_cost_uses_the_providers_prices_and_shows_the_claude_equivalent(
    priced_server: Server, upstream: FakeOpenAI
) -> None:
    # 1,000,000 prompt tokens of which 400,000 cached, 100,000 out: 0.6*1 + 0.4*0.5 + 0.1*2 = $1.00
    upstream.script(completion("priced", prompt=1_000_000, completion_tokens=100_000, cached=400_000))
    response = httpx.post(
        f"{priced_server.url}/v1/messages",
        json={
            "model": "claude-opus-4-8",
            "max_tokens": 10,
            "messages": [{"role": "user", "content": "price me"}],
        },
    )
    assert response.status_code == 200
    row = priced_server.wait_for_exchange(lambda e: e["backend_model"] == "house-model")
    assert row["cost_usd"] == pytest.approx(1.00)
    assert row["claude_cost_usd"] is not None and row["claude_cost_usd"] > row["cost_usd"]


def test_a_glob_price_entry_prices_every_model_of_a_local_server_at_zero(
    priced_server: Server, upstream: FakeOpenAI
) -> None:
    """Ollama's model ids are unknown to any price list: without the `*` entry the cost would be unknown."""
    upstream.script(completion("local", prompt=20_000, completion_tokens=1_000))
    body = {"model": "claude-haiku-4-5", "max_tokens": 10, "messages": [{"role": "user", "content": "free?"}]}
    assert httpx.post(f"{priced_server.url}/v1/messages", json=body).status_code == 200
    row = priced_server.wait_for_exchange(lambda e: e["backend_model"] == "qwen3-coder:30b")
    assert (row["provider"], row["cost_usd"]) == ("local", 0.0)
    assert row["claude_cost_usd"] is not None and row["claude_cost_usd"] > 0  # what it saved
