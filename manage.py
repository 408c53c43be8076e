#!/usr/bin/env python
"""Django's command-line utility for Switchboard."""

import os
import sys


def main() -> None:
    if sys.argv[1:2] == ["serve"]:
        # Twisted imports pyOpenSSL to offer TLS listeners, ~6 MB resident for the life of the process.
        # `serve` listens on plain TCP only (TLS belongs to a reverse proxy in front), so the import is
        # refused and Twisted goes without it; every other command keeps it.
        sys.modules.setdefault("OpenSSL", None)  # type: ignore[assignment]
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "proxy.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
