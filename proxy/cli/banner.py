"""What `manage.py serve` says once its port is bound: where it listens, where data lives, where routing
comes from, and the two lines that point Claude Code at it."""

from __future__ import annotations

import os

from django.conf import settings

from proxy.translate.dialects import DIALECTS

WILDCARD_HOSTS = ("0.0.0.0", "::", "")


def client_url(host: str, port: int) -> str:
    """The URL a client on this machine uses: a wildcard bind is reached on loopback."""
    if host in WILDCARD_HOSTS:
        host = "127.0.0.1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def data_location() -> str:
    """The database, without its password: a SQLite file, or the server and database name."""
    db = settings.DATABASES["default"]
    engine = str(db["ENGINE"])
    if engine.endswith("sqlite3"):
        return f"{db['NAME']} (SQLite; SWITCHBOARD_DATA_DIR moves it)"
    where = f"{db.get('HOST') or 'localhost'}:{db.get('PORT') or 'default port'}/{db.get('NAME')}"
    return f"{engine.rsplit('.', 1)[-1]} at {where} (DATABASE_URL)"


def routing_source(seeded: str) -> list[str]:
    """Lines saying whether routing was just seeded from the environment or came from the database."""
    from proxy.models import Provider, Rule
    from proxy.routing.seed import SEED_VARIABLES, ignored_environment

    if seeded:
        return [
            f"routing:   seeded from the environment: {seeded}",
            f"           from now on it lives in the database: {', '.join(SEED_VARIABLES)} are read on",
            "           the first start only (edit routing on the Routes page or with `manage.py routes`)",
        ]
    lines = [
        f"routing:   from the database ({Provider.objects.count()} providers, {Rule.objects.count()} rules),"
        " not the environment,",
        f"           which seeds it on the first start only: {', '.join(SEED_VARIABLES)} changed later do",
        "           nothing (edit routing on the Routes page or with `manage.py routes`)",
    ]
    ignored = ignored_environment()
    if ignored:
        lines.append(f"           ignored now, not what the stored routing uses: {', '.join(ignored)}")
    return lines


def claude_code_lines(url: str, *, passthrough: bool) -> list[str]:
    """The two lines to paste into the shell that runs Claude Code."""
    if passthrough:
        # the client's own Anthropic login or key is forwarded: a made-up token would be refused upstream
        return [
            f"  export ANTHROPIC_BASE_URL={url}",
            "  claude    # your own Claude login or key is forwarded",
        ]
    # with client keys configured (SWITCHBOARD_API_KEYS) the token must be one of them; never print it
    token = "<one of SWITCHBOARD_API_KEYS>" if os.environ.get("SWITCHBOARD_API_KEYS") else "anything"
    return [f"  export ANTHROPIC_BASE_URL={url} ANTHROPIC_AUTH_TOKEN={token}", "  claude"]


def start_banner(*, host: str, port: int, seeded: str) -> str:
    """The whole banner, once the port is bound."""
    from proxy.models import Rule

    url = client_url(host, port)
    default = Rule.objects.filter(is_default=True, enabled=True).select_related("provider").first()
    passthrough = False  # the default rule sends the client's own model id
    if default is not None and (dialect := DIALECTS.get(default.provider.dialect)) is not None:
        passthrough = dialect.capabilities.keeps_client_model and not default.model
    everywhere = f" (bound to {host}: every interface)" if host in WILDCARD_HOSTS else ""
    lines = [
        f"Switchboard is listening on {url}{everywhere}",
        f"dashboard: {url}/    API: {url}/v1/messages",
        f"data:      {data_location()}",
        *routing_source(seeded),
        "",
        "In the shell where you run Claude Code:",
        *claude_code_lines(url, passthrough=passthrough),
    ]
    return "\n".join(lines)
