"""`manage.py prune [--dry-run] [--days N] [--gb N] [--vacuum]`: apply the retention policy now."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from proxy.recording import retention


def megabytes(n: int) -> str:
    return f"{n / 1024 / 1024:,.1f} MB"


class Command(BaseCommand):
    help = "Delete the exchanges past the retention policy (days and/or GB), and the blobs only they used."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--dry-run", action="store_true", help="say what would be deleted, delete nothing"
        )
        parser.add_argument("--days", type=int, help="keep this many days (instead of the policy's)")
        parser.add_argument("--gb", type=float, help="keep at most this many GB (instead of the policy's)")
        parser.add_argument(
            "--vacuum",
            action="store_true",
            help="then give the freed space back to the disk (SQLite: VACUUM)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        policy = retention.current_policy()
        if options["days"] is not None or options["gb"] is not None:
            if (options["days"] or 0) < 0 or (options["gb"] or 0) < 0:
                raise CommandError("--days and --gb must not be negative")
            policy = retention.Policy(
                days=options["days"] if options["days"] is not None else policy.days,
                max_gb=options["gb"] if options["gb"] is not None else policy.max_gb,
                source=policy.source,
            )
        self.stdout.write(f"policy: keep {policy.describe()}")
        result = retention.prune(policy, dry_run=options["dry_run"])
        assert result.before is not None
        verb = "would delete" if result.dry_run else "deleted"
        self.stdout.write(
            f"{verb} {result.exchanges} of {result.before.exchanges} exchanges and {result.blobs} blobs"
        )
        if options["vacuum"] and not result.dry_run:
            retention.vacuum()
        if not result.dry_run:
            after = retention.database_size()
            self.stdout.write(
                f"data: {megabytes(result.before.used_bytes)} -> {megabytes(after.used_bytes)}; "
                f"file {megabytes(after.file_bytes)}, WAL {megabytes(after.wal_bytes)}"
            )
