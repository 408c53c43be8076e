"""`manage.py routes export|import|list`: the routing configuration as a file a team keeps in git."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import orjson
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser

from proxy.routing import config_io
from proxy.routing.order import order_notes, order_warnings
from proxy.routing.rules import ConfigError, RuleSpec
from proxy.routing.snapshot import load_specs


class Command(BaseCommand):
    help = "Export, import or list the routing configuration (providers and rules)."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        export = sub.add_parser("export", help="write the configuration as TOML (no secrets)")
        export.add_argument("-o", "--output", help="file to write (default: standard output)")
        imp = sub.add_parser("import", help="replace the configuration with a TOML file")
        imp.add_argument("file", help="TOML file from `routes export`, or a claude-code-router config.json")
        imp.add_argument(
            "--from-claude-code-router",
            action="store_true",
            help="the file is claude-code-router's config.json (~/.claude-code-router/config.json)",
        )
        imp.add_argument("--dry-run", action="store_true", help="check and show the result, change nothing")
        sub.add_parser("list", help="show the rules in the order they are tried")

    def handle(self, *args: Any, **options: Any) -> None:
        # A fresh data directory has no tables yet: create them, as `serve` does, instead of a traceback.
        call_command("migrate", interactive=False, verbosity=0)
        match options["action"]:
            case "export":
                self.export(options.get("output"))
            case "import":
                self.import_file(Path(options["file"]).expanduser(), options)
            case "list":
                self.list_rules()

    def export(self, output: str | None) -> None:
        self._say_when_empty()
        text = config_io.export_config()
        if output:
            Path(output).write_text(text)
            self.stderr.write(f"wrote {output}")
        else:
            sys.stdout.write(text)

    def import_file(self, path: Path, options: dict[str, Any]) -> None:
        try:
            raw = path.read_text()
        except OSError as exc:
            raise CommandError(f"{path}: {exc.strerror}") from exc
        notes: list[str] = []
        try:
            if options["from_claude_code_router"]:
                try:
                    data = orjson.loads(raw)
                except orjson.JSONDecodeError as exc:
                    raise CommandError(f"{path}: not valid JSON ({exc})") from exc
                providers, rules, notes = config_io.from_claude_code_router(data)
            else:
                providers, rules = config_io.parse_toml(raw)
            if options["dry_run"]:
                from proxy.routing.snapshot import validate_config

                validate_config(providers, rules)
                self.stdout.write(config_io.export_toml(providers, rules))
            else:
                config_io.import_config(providers, rules, actor=f"manage.py routes import {path}")
        except ConfigError as exc:
            lines = "\n".join(f"  - {p}" for p in exc.problems)
            raise CommandError(f"{path}: refused, the current configuration is unchanged:\n{lines}") from exc
        for note in [*notes, *order_notes(rules)]:
            self.stderr.write(f"note: {note}")
        self._warn(rules)
        verb = "would import" if options["dry_run"] else "imported"
        self.stderr.write(self.style.SUCCESS(f"{verb} {len(providers)} providers and {len(rules)} rules"))

    def list_rules(self) -> None:
        self._say_when_empty()
        providers, rules = load_specs()  # in the order they are tried: the default last
        for p in providers:
            key = (
                f"env {p.api_key_env}"
                if p.api_key_env
                else ("stored secret" if p.api_key_secret else "no key")
            )
            self.stdout.write(f"provider {p.name}: {p.dialect} {p.base_url} ({key}){_healing(p)}")
        for position, r in enumerate(rules, start=1):
            state = "" if r.enabled else " [disabled]"
            when = (
                "default, tried last"
                if r.is_default
                else (orjson.dumps(dict(r.conditions)).decode() if r.conditions else "always")
            )
            target = f"{r.provider}/{r.model or '(client model)'}"
            chain = "".join(
                f" -> {f.get('rule') or f.get('provider', '') + '/' + f.get('model', '')}"
                for f in r.fallbacks
            )
            self.stdout.write(f"{position}. rule {r.name}{state}: {when} => {target}{chain}{_healing(r)}")
        self._warn(rules)

    def _warn(self, rules: list[RuleSpec]) -> None:
        for warning in order_warnings(rules):
            self.stderr.write(self.style.WARNING(f"warning: {warning.message}"))

    def _say_when_empty(self) -> None:
        from proxy.models import Provider

        if not Provider.objects.exists():
            self.stderr.write(
                "no routing configuration yet: `python manage.py serve` seeds it from the environment on "
                "its first start, or load one with `python manage.py routes import FILE`"
            )


def _healing(spec: Any) -> str:
    """Tool-call healing when it differs from the default (on, one retry); a rule's None is its provider's."""
    parts = []
    if spec.heal_tool_calls is False:
        parts.append("tool-call healing off")
    if spec.tool_call_retries is not None and spec.tool_call_retries != 1:
        parts.append(f"tool_call_retries {spec.tool_call_retries}")
    return f" [{', '.join(parts)}]" if parts else ""
