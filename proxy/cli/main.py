"""The `switchboard` command: `serve`, `claude`, `statusline`, and every `manage.py` command.

    switchboard serve [--host H] [--port P] [--workers N]
    switchboard claude [--port P] [--print-env] [claude args...]
    switchboard statusline [--url URL]
    switchboard routes list              (any other command goes to manage.py)

Imports stay inside the commands: `statusline` runs after every Claude Code message and must not pay
for Django.
"""

from __future__ import annotations

import argparse
import os
import sys

USAGE = __doc__.split("\n\n")[1]


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(f"usage:\n{USAGE}\n")
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command == "statusline":
        from proxy.cli import statusline

        parser = argparse.ArgumentParser(prog="switchboard statusline")
        parser.add_argument("--url", default=statusline.DEFAULT_URL)
        return statusline.main(parser.parse_args(rest).url)
    if command == "serve":
        parser = argparse.ArgumentParser(prog="switchboard serve")
        parser.add_argument("--host", default=os.environ.get("SWITCHBOARD_HOST", "127.0.0.1"))
        parser.add_argument("--port", type=int, default=int(os.environ.get("SWITCHBOARD_PORT", "8082")))
        parser.add_argument("--workers", type=int, default=1, help="server processes behind the one port")
        parser.add_argument("--fd", type=int, default=None, help=argparse.SUPPRESS)
        args = parser.parse_args(rest)
        if args.workers > 1:
            from proxy.cli.workers import serve_workers

            return serve_workers(args.host, args.port, args.workers)
        extra = ["--fd", str(args.fd)] if args.fd is not None else []
        return manage(["serve", "--host", args.host, "--port", str(args.port), *extra])
    if command == "claude":
        from proxy.cli.launcher import launch

        return launch(rest)
    return manage(argv)


def child_env(**extra: str) -> dict[str, str]:
    """The environment for a `python -m proxy.cli` child: this checkout importable from any directory."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "PYTHONPATH": path, **extra}


def manage(argv: list[str]) -> int:
    """Run a management command, as `python manage.py ARGV` would."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "proxy.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(["switchboard", *argv])
    return 0
