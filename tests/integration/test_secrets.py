"""Secrets never appear after entry: every output of a real server is grepped for every key used.

Client keys (environment and dashboard-made, and a wrong one), the backend key from the environment, a
provider key typed into the routes editor, echoed back by the backend in errors: none of them may show in
the server log, /api/exchanges, any dashboard page of those exchanges, the websocket frames, `routes
export`, or (except encrypted) the database file itself. Issue #17.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import anthropic
import httpx
import pytest

from tests.conftest import ROOT, Server, run_async, start_server, stop_server
from tests.fakes.openai_upstream import FakeOpenAI, completion, error
from tests.integration.test_clientkeys import ENV_KEY, HI, UPSTREAM_KEY, keyed_env, make_key

STORED_KEY = "sk-stored-" + "s" * 30
WRONG_KEY = "sk-sb-wrong-" + "x" * 30
QUERY_KEY = "q" * 32  # a key some client put in the query string (the access log prints request lines)


def post_form(server: Server, path: str, data: dict[str, str]) -> httpx.Response:
    """A dashboard form POST as a browser makes it: CSRF cookie and token from a page first."""
    http = server.dashboard()  # logged in when the server needs a login
    page = http.get("/routes")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
    assert token
    return http.post(path, data={**data, "csrfmiddlewaretoken": token.group(1)})


class Frames:
    """The live feed's websocket, as the dashboard opens it, collecting every frame in a thread."""

    def __init__(self, url: str, cookies: httpx.Cookies | None = None) -> None:
        self.url = url
        # The logged-in browser's cookies: a configured key turns the dashboard login on.
        self.cookie = "; ".join(f"{name}={value}" for name, value in (cookies or {}).items())
        self.frames: list[str] = []
        self.ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=lambda: run_async(self._run()), daemon=True)

    async def _run(self) -> None:
        import websockets

        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        ws_url = self.url.replace("http://", "ws://") + "/ws/exchanges/"
        headers = {"cookie": self.cookie} if self.cookie else {}
        async with websockets.connect(ws_url, origin=self.url, additional_headers=headers) as socket:
            self.ready.set()
            while not self._stop.is_set():
                with contextlib.suppress(TimeoutError):
                    self.frames.append(str(await asyncio.wait_for(socket.recv(), timeout=0.2)))

    def __enter__(self) -> Frames:
        self._thread.start()
        assert self.ready.wait(10), "the websocket did not connect"
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._loop is not None and self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(5)


@pytest.fixture(scope="module")
def loud(fake_openai: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Keys configured, every log line on (DEBUG, the access log)."""
    srv = start_server(
        tmp_path_factory.mktemp("secrets"),
        keyed_env(fake_openai, SWITCHBOARD_LOG_LEVEL="DEBUG", SWITCHBOARD_ACCESS_LOG="1"),
    )
    yield srv
    stop_server(srv)


def test_no_key_appears_in_any_output(loud: Server, upstream: FakeOpenAI) -> None:
    ui_key, _ = make_key(loud, "ci")
    provider = post_form(
        loud,
        "/routes/providers/new",
        {"name": "stored", "dialect": "openai", "base_url": upstream.url, "new_secret": STORED_KEY,
         "api_key_env": "", "extra_headers": "", "connect_timeout": "5", "first_byte_timeout": "30",
         "idle_timeout": "30", "total_timeout": "0",
         "model_settings": ""},
    )  # fmt: skip
    assert provider.status_code == 302, provider.text[:2000]  # saved: back to the routes page
    rule = post_form(
        loud,
        "/routes/rules/new",
        {"name": "to-stored", "position": "1", "enabled": "on", "provider": _provider_pk(loud, "stored"),
         "model": "stored-model", "conditions": '{"model": "*stored*"}', "overrides": "", "fallbacks": "",
         "aliases": ""},
    )  # fmt: skip
    assert rule.status_code == 302, rule.text[:2000]
    secrets = [ENV_KEY, UPSTREAM_KEY, STORED_KEY, ui_key, WRONG_KEY, QUERY_KEY]
    session = {"x-claude-code-session-id": "secrets-session"}

    with Frames(loud.url, loud.dashboard().cookies) as live:
        by_bearer = anthropic.Anthropic(
            base_url=loud.url, auth_token=ui_key, default_headers=session, max_retries=0
        )
        by_header = anthropic.Anthropic(
            base_url=loud.url, default_headers={**session, "x-api-key": ENV_KEY}, max_retries=0
        )
        upstream.script(completion("fine"))
        assert by_bearer.messages.create(model="claude-opus-4-8", max_tokens=5, messages=HI).content
        # The stored provider's key, echoed by the backend in its error; then the environment's.
        upstream.script(error(401, f"Incorrect API key provided: {STORED_KEY}", type_="invalid_api_key"))
        with pytest.raises(anthropic.AuthenticationError) as echoed:
            by_header.messages.create(model="claude-stored-1", max_tokens=5, messages=HI)
        assert upstream.headers[-1]["authorization"] == f"Bearer {STORED_KEY}"  # decrypted to be used
        upstream.script(error(400, f"bad request for key={UPSTREAM_KEY} (Bearer {UPSTREAM_KEY})"))
        with pytest.raises(anthropic.BadRequestError):
            by_bearer.messages.create(model="claude-opus-4-8", max_tokens=5, messages=HI)
        with by_header.messages.stream(model="claude-opus-4-8", max_tokens=5, messages=HI) as stream:
            stream.get_final_message()
        by_bearer.messages.count_tokens(model="claude-opus-4-8", messages=HI)
        queried = httpx.post(
            f"{loud.url}/v1/messages?beta=true&key={QUERY_KEY}",
            json={"model": "claude-opus-4-8", "max_tokens": 5, "messages": HI},
            headers={"authorization": f"Bearer {ui_key}"},
        )
        assert queried.status_code == 200
        with pytest.raises(anthropic.AuthenticationError):
            anthropic.Anthropic(base_url=loud.url, auth_token=WRONG_KEY, max_retries=0).messages.create(
                model="claude-opus-4-8", max_tokens=5, messages=HI
            )
        rows = loud.exchanges(100)
    assert "[redacted]" in echoed.value.message

    outputs: dict[str, str] = {"websocket frames": "\n".join(live.frames)}
    assert live.frames, "the live feed sent nothing"
    outputs["/api/exchanges"] = loud.dashboard().get("/api/exchanges", params={"limit": 500}).text
    pages = ["/", "/?key=ci", "/sessions", "/sessions/secrets-session", "/tools", "/tools/failures", "/costs",
             "/routes", "/keys", f"/routes/providers/{_provider_pk(loud, 'stored')}"]  # fmt: skip
    pages += [f"/exchanges/{row['id']}" for row in rows]
    for page in pages:
        response = loud.dashboard().get(page, timeout=15)
        assert response.status_code == 200, page
        outputs[page] = response.text
    export = subprocess.run(
        [sys.executable, "manage.py", "routes", "export"],
        cwd=ROOT,
        env=loud.env,
        capture_output=True,
        timeout=60,
    )
    assert export.returncode == 0, export.stderr
    outputs["routes export"] = export.stdout.decode() + export.stderr.decode()
    outputs["server log"] = loud.log.read_text(errors="replace")
    assert (
        '"POST /v1/messages?beta=true&key=[redacted]" 200' in outputs["server log"]
    )  # the access log was on
    for path in sorted(Path(loud.data_dir).glob("switchboard.sqlite3*")):  # the database, its WAL included
        outputs[path.name] = path.read_bytes().decode("latin-1")

    leaks = [(where, secret[:12]) for where, text in outputs.items() for secret in secrets if secret in text]
    assert not leaks, f"secrets found: {leaks}"
    assert "[redacted]" in outputs["/api/exchanges"]
    assert any(r["error_type"] == "authentication_error" and r["http_status"] == 401 for r in rows)


def _provider_pk(server: Server, name: str) -> str:
    page = server.dashboard().get("/routes").text
    match = re.search(rf'id="provider-(\d+)">\s*<span class="name"><strong[^>]*>{name}</strong>', page)
    assert match, page[:3000]
    return match.group(1)
