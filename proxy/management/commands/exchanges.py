"""`manage.py exchanges export [--since WHEN] [--until WHEN] [--session ID] [-o FILE]`: the record as
JSON lines, one exchange per line with every field and the whole bodies (blobs put back)."""

from __future__ import annotations

import re
import sys
from datetime import UTC, datetime, timedelta
from typing import IO, Any

import orjson
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from proxy.models import Exchange

_RELATIVE = re.compile(r"^(\d+)([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_when(value: str) -> datetime:
    """An ISO date or datetime (UTC unless it says otherwise), or an age: 30m, 24h, 7d, 2w."""
    if m := _RELATIVE.match(value.strip()):
        return timezone.now() - timedelta(**{_UNITS[m.group(2)]: int(m.group(1))})
    try:
        when = parse_datetime(value)
        if when is None and (day := parse_date(value)) is not None:
            when = datetime(day.year, day.month, day.day)
    except ValueError:
        when = None
    if when is None:
        raise CommandError(
            f"{value!r}: expected an ISO date or datetime (2026-12-01, 2026-12-01T10:00) or 7d, 24h"
        )
    return when if when.tzinfo else when.replace(tzinfo=UTC)


class Command(BaseCommand):
    help = "Export recorded exchanges as JSON lines, full bodies included."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        export = sub.add_parser("export", help="write exchanges as JSON lines, oldest first")
        export.add_argument("--since", help="received at or after: ISO date/datetime, or an age (7d, 24h)")
        export.add_argument("--until", help="received before: ISO date/datetime, or an age")
        export.add_argument("--session", help="only this session id")
        export.add_argument("-o", "--output", help="file to write (default: standard output)")

    def handle(self, *args: Any, **options: Any) -> None:
        rows = Exchange.objects.order_by("id")
        if options["since"]:
            rows = rows.filter(created_at__gte=parse_when(options["since"]))
        if options["until"]:
            rows = rows.filter(created_at__lt=parse_when(options["until"]))
        if options["session"]:
            rows = rows.filter(session_id=options["session"])
        names = [f.name for f in Exchange._meta.concrete_fields]
        if options["output"]:
            with open(options["output"], "wb") as out:
                n = write_lines(rows.values(*names), out)
            self.stderr.write(f"{n} exchanges written to {options['output']}")
        else:
            write_lines(rows.values(*names), sys.stdout.buffer)


def write_lines(rows: Any, out: IO[bytes]) -> int:
    n = 0
    for row in rows.iterator(chunk_size=200):  # a chunk of rows in memory at a time, not the table
        out.write(orjson.dumps(row, option=orjson.OPT_NON_STR_KEYS | orjson.OPT_APPEND_NEWLINE))
        n += 1
    out.flush()
    return n
