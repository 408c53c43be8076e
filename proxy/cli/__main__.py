"""`python -m proxy.cli`: the same as the `switchboard` command."""

from proxy.cli.main import main

raise SystemExit(main())
