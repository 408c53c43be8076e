"""`manage.py rollups rebuild`: recount the costs and sessions rollups from every exchange row."""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db import connection, transaction

from proxy.models import DailyUsage, SessionUsage
from proxy.recording import rollups


class Command(BaseCommand):
    help = (
        "Recount the rollups the costs page and the sessions list read (triggers keep them as rows are"
        " written; this is for rows written around them, e.g. restored from a backup without the triggers)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("action", choices=["rebuild"])

    def handle(self, *args: Any, **options: Any) -> None:
        started = time.monotonic()
        with transaction.atomic():  # the pages see the old sums or the new ones, never none
            rollups.rebuild(connection)
        self.stdout.write(
            f"rollups rebuilt in {time.monotonic() - started:.1f} s: {DailyUsage.objects.count():,} day"
            f" buckets, {SessionUsage.objects.count():,} session buckets"
        )
