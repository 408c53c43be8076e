"""`switchboard serve --workers N`: N server processes behind one port.

The parent does the one-time work (checks, migrations, the routing seed, the first admin), binds
HOST:PORT once and starts N `serve --fd` processes on that socket: the kernel hands each new connection
to one of them. They share the database (each with its own recorder writer), and with REDIS_URL the live
feed; routing edits reach every process through the configuration version in the database. SIGTERM or
SIGINT stops them all (each flushes its recorder); if one dies, the others are stopped too, so a process
manager sees the failure and restarts the whole.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType

STOP_GRACE_S = 60.0


def serve_workers(host: str, port: int, workers: int) -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "proxy.settings")
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connections

    from proxy.cli.main import child_env
    from proxy.management.commands.serve import Command
    from proxy.routing.seed import ensure_seeded
    from proxy.security import access

    if ":" in host:
        print("switchboard: --workers needs an IPv4 address for --host", file=sys.stderr)
        return 2
    access.listen_on(host, port)
    if problems := access.startup_problems():
        print("refusing to start:\n" + "\n".join(f"  - {p}" for p in problems), file=sys.stderr)
        return 1
    call_command("migrate", interactive=False, verbosity=0)
    ensure_seeded()
    Command()._announce_access(host)  # once, here: workers racing to create the first admin would clash
    if not settings.REDIS_URL:
        print(
            "switchboard: without REDIS_URL each worker's live feed shows only the requests it served; "
            "set REDIS_URL=redis://127.0.0.1:6379/0 to share it",
            file=sys.stderr,
        )
    connections.close_all()
    metrics_dir = _metrics_dir()
    listener = socket.create_server((host, port), backlog=1024)  # SO_REUSEADDR, like Twisted's
    listener.set_inheritable(True)
    command = [sys.executable, "-m", "proxy.cli", "serve", "--host", host, "--port", str(port)]
    children = [
        subprocess.Popen(
            [*command, "--fd", str(listener.fileno())],
            pass_fds=(listener.fileno(),),
            env=child_env(SWITCHBOARD_WORKER=str(i), PROMETHEUS_MULTIPROC_DIR=metrics_dir),
        )
        for i in range(workers)
    ]
    listener.close()  # the workers hold it now
    print(f"Switchboard: {workers} workers on http://{host}:{port}", flush=True)
    try:
        return _supervise(children)
    finally:
        if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            shutil.rmtree(metrics_dir, ignore_errors=True)


def _metrics_dir() -> str:
    """Where the workers share their /metrics numbers: PROMETHEUS_MULTIPROC_DIR if the operator set one
    (emptied: counts from an earlier run must not add up), else a fresh temporary directory."""
    given = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not given:
        return tempfile.mkdtemp(prefix="switchboard-metrics-")
    Path(given).mkdir(parents=True, exist_ok=True)
    for old in Path(given).glob("*.db"):
        old.unlink()
    return given


def _supervise(children: list[subprocess.Popen[bytes]]) -> int:
    stopping = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    code = 0
    while not stopping:
        exited = [c for c in children if c.poll() is not None]
        if exited:
            code = exited[0].returncode or 1
            print(
                f"switchboard: worker {exited[0].pid} exited ({exited[0].returncode}); stopping",
                file=sys.stderr,
            )
            break
        time.sleep(0.2)
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_S
    for child in children:
        try:
            child.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
    return 0 if stopping else code
