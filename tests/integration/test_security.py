"""The security edge over real HTTP (issue #17, "Safe by default"): foreign Host headers, cross-site
Origins, CSRF, the dashboard login, who may change where keys go, and `serve` refusing to expose itself.

A DNS-rebinding page reaches 127.0.0.1 under its own name (Host: evil.example): everything it could
read or change is refused here, on the dashboard (Django) and on /v1/ (our own fast path) alike.
"""

from __future__ import annotations

import base64
import contextlib
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.conftest import ROOT, Server, free_port, server_env, stop_server
from tests.fakes.openai_upstream import FakeOpenAI, completion

EVIL = "evil.example"
KEY = "sk-client-test-key"


def host_of(server: Server) -> str:
    return urlsplit(server.url).netloc


def ws_handshake(server: Server, *, origin: str | None, host: str | None = None, cookie: str = "") -> int:
    """A real websocket opening handshake to the live feed; the HTTP status it got (101 = accepted)."""
    parts = urlsplit(server.url)
    lines = [
        "GET /ws/exchanges/ HTTP/1.1",
        f"Host: {host or parts.netloc}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}",
        "Sec-WebSocket-Version: 13",
    ]
    if origin is not None:
        lines.append(f"Origin: {origin}")
    if cookie:
        lines.append(f"Cookie: {cookie}")
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        head = b""
        while b"\r\n" not in head:
            chunk = sock.recv(4096)
            if not chunk:
                break
            head += chunk
    return int(head.split(b" ", 2)[1])


def csrf_from(html: str) -> str:
    match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html)
    assert match, "no CSRF token in the page"
    return match.group(1)


def provider_post(token: str, **fields: str) -> dict[str, str]:
    data = {
        "csrfmiddlewaretoken": token,
        "name": "stolen",
        "dialect": "anthropic",
        "base_url": "https://collector.evil.example",
        "api_key_env": "",
        "extra_headers": "",
        "connect_timeout": "10",
        "first_byte_timeout": "300",
        "idle_timeout": "120",
        "total_timeout": "0",
        "model_settings": "",
    }
    return {**data, **fields}


# --- the default server: loopback, no keys, no login ------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/", "/routes", "/sessions", "/api/exchanges", "/v1/models", "/static/dashboard.css"]
)
def test_foreign_host_is_refused_on_every_surface(server: Server, path: str) -> None:
    own = httpx.get(server.url + path, timeout=10)
    assert own.status_code == 200
    refused = httpx.get(server.url + path, headers={"Host": EVIL}, timeout=10)
    assert refused.status_code == 400
    assert EVIL in refused.text and "SWITCHBOARD_ALLOWED_HOSTS" in refused.text
    assert "Switchboard</a>" not in refused.text  # not the dashboard


@pytest.mark.parametrize("host", [EVIL, f"{EVIL}:8082", "127.0.0.1.evil.example", "localhost.evil.example"])
def test_foreign_host_gets_an_anthropic_error_on_the_api(server: Server, host: str) -> None:
    body = {"model": "claude-sonnet-4-5", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
    response = httpx.post(f"{server.url}/v1/messages", json=body, headers={"Host": host}, timeout=10)
    assert response.status_code == 400
    error = response.json()
    assert error["type"] == "error" and error["error"]["type"] == "invalid_request_error"
    assert host in error["error"]["message"]
    exchanges = httpx.get(f"{server.url}/api/exchanges", headers={"Host": host}, timeout=10)
    assert exchanges.status_code == 400 and exchanges.json()["error"]["type"] == "invalid_request_error"


def test_loopback_names_are_served(server: Server) -> None:
    port = urlsplit(server.url).port
    for host in (f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}", "localhost"):
        assert httpx.get(f"{server.url}/v1/models", headers={"Host": host}, timeout=10).status_code == 200


def test_cross_site_page_cannot_call_the_api(server: Server) -> None:
    """A page elsewhere can send a 'simple' POST without preflight; it must not spend the user's backends."""
    body = '{"model": "claude-sonnet-4-5", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}'
    for origin in (f"http://{EVIL}", "null", f"http://localhost:{free_port()}"):
        response = httpx.post(
            f"{server.url}/v1/messages",
            content=body,
            headers={"Origin": origin, "Content-Type": "text/plain"},
            timeout=10,
        )
        assert response.status_code == 403, origin
        assert response.json()["error"]["type"] == "permission_error"
    # the dashboard's own origin is not refused (this request is then rejected for its body only)
    own = httpx.post(f"{server.url}/v1/messages", content=b"{}", headers={"Origin": server.url}, timeout=10)
    assert own.status_code == 400 and own.json()["error"]["type"] == "invalid_request_error"


@pytest.mark.parametrize("origin", [f"http://{EVIL}", "null", "file://", None])
def test_live_feed_refuses_foreign_origins(server: Server, origin: str | None) -> None:
    assert ws_handshake(server, origin=origin) == 403


def test_live_feed_accepts_its_own_origin(server: Server) -> None:
    assert ws_handshake(server, origin=server.url) == 101
    assert ws_handshake(server, origin=server.url.replace("127.0.0.1", "localhost"),
                        host=host_of(server).replace("127.0.0.1", "localhost")) == 101  # fmt: skip


def test_live_feed_refuses_a_rebinding_page(server: Server) -> None:
    """Host and Origin agree (the page really is at evil.example:port), and it is still refused."""
    port = urlsplit(server.url).port
    assert ws_handshake(server, origin=f"http://{EVIL}:{port}", host=f"{EVIL}:{port}") == 403


def test_rebinding_page_cannot_repoint_a_provider(server: Server) -> None:
    """The attack of the issue: read the form's CSRF token under the page's own name, post it back."""
    port = urlsplit(server.url).port
    with httpx.Client(headers={"Host": f"{EVIL}:{port}"}, timeout=10) as browser:
        page = browser.get(f"{server.url}/routes/providers/new")
        assert page.status_code == 400 and "csrfmiddlewaretoken" not in page.text
        posted = browser.post(
            f"{server.url}/routes/providers/new",
            data=provider_post("x"),
            headers={"Origin": f"http://{EVIL}:{port}"},
        )
        assert posted.status_code == 400
    assert "stolen" not in httpx.get(f"{server.url}/routes", timeout=10).text


def test_post_without_csrf_token_is_refused(server: Server) -> None:
    for path in ("/routes/providers/new", "/routes/rules/1/delete", "/routes/rules/1/move/down"):
        response = httpx.post(server.url + path, data=provider_post(""), timeout=10)
        assert response.status_code == 403, path
    # the same form from another site, with a token of its own, is refused by Origin too
    with httpx.Client(timeout=10) as browser:
        token = csrf_from(browser.get(f"{server.url}/routes/providers/new").text)
        refused = browser.post(
            f"{server.url}/routes/providers/new",
            data=provider_post(token),
            headers={"Origin": f"http://{EVIL}"},
        )
        assert refused.status_code == 403
    assert "stolen" not in httpx.get(f"{server.url}/routes", timeout=10).text


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("AWS_SECRET_ACCESS_KEY", "not an allowed key variable"),
        ("HOME", "not an allowed key variable"),
        ("SWITCHBOARD_SECRET_KEY", "never sent to a backend"),
        ("SWITCHBOARD_API_KEY", "never sent to a backend"),
    ],
)
def test_provider_key_variable_outside_the_allowlist_is_a_form_error(
    server: Server, name: str, words: str
) -> None:
    with httpx.Client(timeout=10) as browser:
        token = csrf_from(browser.get(f"{server.url}/routes/providers/new").text)
        response = browser.post(
            f"{server.url}/routes/providers/new",
            data=provider_post(token, name="sneaky", dialect="openai", api_key_env=name),
            headers={"HX-Request": "true"},
        )
    assert response.status_code == 200
    assert words in response.text and "errorlist" in response.text
    assert "sneaky" not in httpx.get(f"{server.url}/routes", timeout=10).text


def test_routes_import_refuses_a_key_variable_outside_the_allowlist(server: Server, tmp_path: Path) -> None:
    config = tmp_path / "routes.toml"
    config.write_text(
        '[[providers]]\nname = "x"\ndialect = "openai"\nbase_url = "https://collector.evil.example/v1"\n'
        'api_key_env = "AWS_SECRET_ACCESS_KEY"\n\n'
        '[[rules]]\nname = "default"\nprovider = "x"\nmodel = "m"\ndefault = true\n'
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "routes", "import", str(config)],
        cwd=ROOT,
        env=server.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "AWS_SECRET_ACCESS_KEY" in result.stderr and "not an allowed key variable" in result.stderr


def test_login_page_escapes_what_it_is_given(server: Server) -> None:
    response = httpx.get(f"{server.url}/login", params={"next": '"><script>alert(1)</script>'}, timeout=10)
    assert response.status_code == 200
    assert "<script>alert(1)" not in response.text
    assert "Optional here" in response.text  # loopback, no keys: the login is not required


# --- a server that requires a login: client keys configured ------------------------------------------


def serve(tmp: Path, *args: str, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], Path, dict[str, str]]:
    data_dir = tmp / "data"
    data_dir.mkdir(exist_ok=True)
    log = tmp / f"serve-{time.monotonic_ns()}.log"
    full_env = server_env(data_dir, env)
    process = subprocess.Popen(
        [sys.executable, "manage.py", "serve", *args],
        cwd=ROOT,
        env=full_env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    return process, log, full_env


def wait_ready(process: subprocess.Popen[bytes], log: Path, url: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited early:\n{log.read_text()[-3000:]}")
        try:
            httpx.get(f"{url}/v1/models", timeout=2)
            return
        except httpx.TransportError:
            time.sleep(0.2)
    raise RuntimeError(f"server not ready:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """`serve` on loopback with SWITCHBOARD_API_KEYS: the first start creates the admin."""
    tmp = tmp_path_factory.mktemp("keyed")
    port = free_port()
    process, log, env = serve(tmp, "--port", str(port), env={"SWITCHBOARD_API_KEYS": KEY})
    server = Server(url=f"http://127.0.0.1:{port}", process=process, data_dir=tmp / "data", log=log, env=env)
    wait_ready(process, log, server.url)
    yield server
    stop_server(server)


def admin_password(server: Server) -> str:
    match = re.search(r"Created dashboard user 'admin' with password: (\S+)", server.log.read_text())
    assert match, server.log.read_text()
    return match.group(1)


@contextlib.contextmanager
def logged_in(server: Server, user: str, password: str) -> Iterator[httpx.Client]:
    """A client that logged in through the login form, as a browser does."""
    with httpx.Client(base_url=server.url, timeout=10) as client:
        token = csrf_from(client.get("/login").text)
        response = client.post(
            "/login", data={"csrfmiddlewaretoken": token, "username": user, "password": password}
        )
        assert response.status_code == 302 and response.headers["location"] == "/", response.text[:500]
        yield client


def test_first_start_that_needs_a_login_prints_the_admin_password_once(keyed: Server) -> None:
    text = keyed.log.read_text()
    assert text.count("Created dashboard user 'admin'") == 1 and "Dashboard login required" in text
    assert len(admin_password(keyed)) >= 16


@pytest.mark.parametrize("path", ["/", "/routes", "/sessions", "/exchanges/1", "/routes/providers/new"])
def test_dashboard_pages_redirect_to_the_login(keyed: Server, path: str) -> None:
    response = httpx.get(keyed.url + path, timeout=10)
    assert response.status_code == 302
    assert response.headers["location"].startswith("/login?next=")
    htmx = httpx.get(keyed.url + path, headers={"HX-Request": "true"}, timeout=10)
    assert htmx.status_code == 401 and htmx.headers["HX-Redirect"] == "/login?next=%2F"
    # an htmx fragment asked for from a page: back to that page after the login
    page = {"HX-Request": "true", "HX-Current-URL": f"{keyed.url}/sessions?q=1"}
    htmx = httpx.get(keyed.url + path, headers=page, timeout=10)
    assert htmx.headers["HX-Redirect"] == "/login?next=%2Fsessions%3Fq%3D1"


def test_json_api_needs_a_login_or_a_client_key(keyed: Server) -> None:
    refused = httpx.get(f"{keyed.url}/api/exchanges", timeout=10)
    assert refused.status_code == 401 and refused.json()["error"]["type"] == "authentication_error"
    assert (
        httpx.get(f"{keyed.url}/api/exchanges", headers={"x-api-key": "wrong"}, timeout=10).status_code == 401
    )
    assert httpx.get(f"{keyed.url}/api/exchanges", headers={"x-api-key": KEY}, timeout=10).status_code == 200
    bearer = {"Authorization": f"Bearer {KEY}"}
    assert httpx.get(f"{keyed.url}/api/exchanges", headers=bearer, timeout=10).status_code == 200
    explain = {"model": "claude-sonnet-4-5", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}
    assert httpx.post(f"{keyed.url}/api/route/explain", json=explain, timeout=10).status_code == 401
    assert (
        httpx.post(f"{keyed.url}/api/route/explain", json=explain, headers=bearer, timeout=10).status_code
        == 200
    )


def test_unauthenticated_provider_edit_is_refused(keyed: Server) -> None:
    with httpx.Client(timeout=10) as browser:
        token = csrf_from(browser.get(f"{keyed.url}/login").text)  # a valid token: only the login is missing
        response = browser.post(f"{keyed.url}/routes/providers/new", data=provider_post(token))
        assert response.status_code == 302 and response.headers["location"].startswith("/login")
        moved = browser.post(f"{keyed.url}/routes/rules/1/delete", data={"csrfmiddlewaretoken": token})
        assert moved.status_code == 302
    with logged_in(keyed, "admin", admin_password(keyed)) as admin:
        page = admin.get("/routes").text
        assert "stolen" not in page and 'id="rule-' in page  # the default rule is still there
        assert "read-only" not in page  # an admin gets the edit controls


def test_live_feed_needs_the_login(keyed: Server) -> None:
    assert ws_handshake(keyed, origin=keyed.url) == 403
    with logged_in(keyed, "admin", admin_password(keyed)) as admin:
        cookie = "; ".join(f"{k}={v}" for k, v in admin.cookies.items())
        assert ws_handshake(keyed, origin=keyed.url, cookie=cookie) == 101
        assert ws_handshake(keyed, origin=f"http://{EVIL}", cookie=cookie) == 403


def test_admin_changes_a_provider_and_the_url_change_is_logged(keyed: Server) -> None:
    with logged_in(keyed, "admin", admin_password(keyed)) as admin:
        page = admin.get("/routes").text
        pk = re.search(r"/routes/providers/(\d+)", page)
        assert pk, page[:2000]
        token = csrf_from(admin.get(f"/routes/providers/{pk.group(1)}").text)
        response = admin.post(
            f"/routes/providers/{pk.group(1)}",
            data=provider_post(token, name="anthropic", base_url="https://mirror.example.test"),
        )
        assert response.status_code == 302, response.text[:1000]
        assert "mirror.example.test" in admin.get("/routes").text
    deadline = time.monotonic() + 5
    while "base URL changed" not in keyed.log.read_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    line = next(x for x in keyed.log.read_text().splitlines() if "base URL changed" in x)
    assert "https://api.anthropic.com" in line and "https://mirror.example.test" in line
    assert "passthrough" in line and "by admin" in line


def test_a_user_who_is_not_an_admin_cannot_change_providers(keyed: Server) -> None:
    make_viewer = (
        "from django.contrib.auth.models import User; User.objects.create_user('viewer', password='pw-v1')"
    )
    subprocess.run([sys.executable, "manage.py", "shell", "-c", make_viewer],
                   cwd=ROOT, env=keyed.env, check=True, capture_output=True, timeout=60)  # fmt: skip
    with logged_in(keyed, "viewer", "pw-v1") as viewer:
        page = viewer.get("/routes")
        assert page.status_code == 200 and "only an admin can change" in page.text  # may look
        assert 'class="read-only"' in page.text
        token = csrf_from(viewer.get("/routes/providers/new").text)
        response = viewer.post("/routes/providers/new", data=provider_post(token))
        assert response.status_code == 403 and "admin" in response.text
        assert "stolen" not in viewer.get("/routes").text


def test_session_cookie_is_http_only_and_named_for_switchboard(keyed: Server) -> None:
    client = httpx.Client(base_url=keyed.url, timeout=10)
    token = csrf_from(client.get("/login").text)
    response = client.post(
        "/login", data={"csrfmiddlewaretoken": token, "username": "admin", "password": admin_password(keyed)}
    )
    cookie = next(
        v for k, v in response.headers.multi_items() if k == "set-cookie" and "switchboard_session" in v
    )
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    client.close()


def test_wrong_password_is_refused(keyed: Server) -> None:
    with httpx.Client(base_url=keyed.url, timeout=10) as client:
        token = csrf_from(client.get("/login").text)
        response = client.post(
            "/login", data={"csrfmiddlewaretoken": token, "username": "admin", "password": "no"}
        )
        assert response.status_code == 200 and "errorlist" in response.text
        assert client.get("/").status_code == 302


# --- serve beyond loopback ---------------------------------------------------------------------------


def test_serve_on_every_interface_without_keys_refuses_to_start(tmp_path: Path) -> None:
    process, log, _ = serve(tmp_path, "--host", "0.0.0.0", "--port", str(free_port()), env={})
    assert process.wait(60) != 0
    text = log.read_text()
    assert "refusing to start" in text and "SWITCHBOARD_API_KEYS" in text and "--host 0.0.0.0" in text


def test_serve_behind_a_public_name_without_keys_refuses_to_start(tmp_path: Path) -> None:
    env = {"SWITCHBOARD_ALLOWED_HOSTS": "switchboard.team.example"}
    process, log, _ = serve(tmp_path, "--port", str(free_port()), env=env)
    assert process.wait(60) != 0
    assert "SWITCHBOARD_ALLOWED_HOSTS=switchboard.team.example" in log.read_text()


def test_serve_exposed_with_debug_refuses_to_start(tmp_path: Path) -> None:
    env = {"SWITCHBOARD_API_KEYS": KEY, "SWITCHBOARD_DEBUG": "true"}
    process, log, _ = serve(tmp_path, "--host", "0.0.0.0", "--port", str(free_port()), env=env)
    assert process.wait(60) != 0
    assert "SWITCHBOARD_DEBUG" in log.read_text()


def test_serve_on_every_interface_with_keys_starts_and_requires_the_login(tmp_path: Path) -> None:
    port = free_port()
    process, log, env = serve(
        tmp_path, "--host", "0.0.0.0", "--port", str(port), env={"SWITCHBOARD_API_KEYS": KEY}
    )
    server = Server(
        url=f"http://127.0.0.1:{port}", process=process, data_dir=tmp_path / "data", log=log, env=env
    )
    try:
        wait_ready(process, log, server.url)
        text = log.read_text()
        assert "Dashboard login required (--host 0.0.0.0)" in text and "SWITCHBOARD_ALLOWED_HOSTS" in text
        assert httpx.get(f"{server.url}/", timeout=10).status_code == 302
        assert httpx.get(f"{server.url}/", headers={"Host": EVIL}, timeout=10).status_code == 400
        with logged_in(server, "admin", admin_password(server)) as admin:
            assert admin.get("/").status_code == 200
    finally:
        stop_server(server)
    # a second start with the user in place creates no other and prints no password
    process, log2, env = serve(
        tmp_path, "--host", "0.0.0.0", "--port", str(port), env={"SWITCHBOARD_API_KEYS": KEY}
    )
    server = Server(
        url=f"http://127.0.0.1:{port}", process=process, data_dir=tmp_path / "data", log=log2, env=env
    )
    try:
        wait_ready(process, log2, server.url)
        assert "Dashboard login required" in log2.read_text() and "password" not in log2.read_text()
    finally:
        stop_server(server)


def test_urls_in_recorded_content_are_never_fetched(server: Server, upstream: FakeOpenAI) -> None:
    """An image URL in a prompt is passed on as a URL: neither the proxy nor the dashboard fetches it."""
    hits: list[bytes] = []
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.settimeout(0.2)
        trap = f"http://127.0.0.1:{listener.getsockname()[1]}/pixel.png"
        upstream.script(completion("seen"))
        content = [
            {"type": "image", "source": {"type": "url", "url": trap}},
            {"type": "text", "text": f"look at {trap} ![x]({trap}) <img src='{trap}'>"},
        ]
        body = {
            "model": "claude-sonnet-4-5",
            "max_tokens": 5,
            "messages": [{"role": "user", "content": content}],
        }
        assert httpx.post(f"{server.url}/v1/messages", json=body, timeout=20).status_code == 200
        row = server.wait_for_exchange(lambda e: trap in str(e["client_request"]))
        page = httpx.get(f"{server.url}/exchanges/{row['id']}", timeout=20)
        assert page.status_code == 200 and trap in page.text
        assert f'src="{trap}"' not in page.text and f"src='{trap}'" not in page.text
        deadline = time.monotonic() + 1
        while time.monotonic() < deadline:
            try:
                connection, _ = listener.accept()
                hits.append(connection.recv(200))
                connection.close()
            except TimeoutError:
                pass
    assert hits == []


def test_scripts_read_exchanges_with_a_client_key(keyed: Server) -> None:
    """The test helper (and any script) reads /api/exchanges with the key when keys are configured."""
    assert isinstance(keyed.exchanges(5), list)


def test_failed_logins_are_limited_per_user_name(keyed: Server) -> None:
    with httpx.Client(base_url=keyed.url, timeout=30) as client:
        token = csrf_from(client.get("/login").text)
        started = time.monotonic()
        for attempt in range(11):
            response = client.post(
                "/login",
                data={"csrfmiddlewaretoken": token, "username": "Guessed", "password": f"pw{attempt}"},
            )
            assert response.status_code == 200
        assert "Too many failed logins" in response.text
        assert (
            "Too many failed logins"
            not in client.post(
                "/login", data={"csrfmiddlewaretoken": token, "username": "someone-else", "password": "x"}
            ).text
        )
    assert time.monotonic() - started < 60


def test_https_behind_a_proxy_marks_the_cookies_secure(tmp_path: Path) -> None:
    port = free_port()
    env = {"SWITCHBOARD_API_KEYS": KEY, "SWITCHBOARD_HTTPS": "true"}
    process, log, full_env = serve(tmp_path, "--port", str(port), env=env)
    server = Server(
        url=f"http://127.0.0.1:{port}", process=process, data_dir=tmp_path / "data", log=log, env=full_env
    )
    try:
        wait_ready(process, log, server.url)
        # what a TLS reverse proxy forwards: daphne (--proxy-headers) takes the scheme from it
        response = httpx.get(f"{server.url}/login", headers={"X-Forwarded-Proto": "https"}, timeout=10)
        cookie = next(v for k, v in response.headers.multi_items() if k == "set-cookie")
        assert "switchboard_csrftoken=" in cookie and "Secure" in cookie and "SameSite=Strict" in cookie
    finally:
        stop_server(server)


def test_secret_key_is_random_and_kept_private_in_the_data_dir(keyed: Server, server: Server) -> None:
    keys = []
    for srv in (keyed, server):
        path = srv.data_dir / "secret_key"
        assert path.stat().st_mode & 0o777 == 0o600
        keys.append(path.read_text())
    assert keys[0] != keys[1] and all(len(k) >= 50 for k in keys)
    assert "change-me" not in keys[0]
