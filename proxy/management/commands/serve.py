"""`python manage.py serve`: migrate, seed the default route, then run daphne (proxy + dashboard)."""

from __future__ import annotations

import ctypes
import os
import sys
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from proxy import access


def _one_malloc_arena() -> None:
    """glibc: one malloc arena for all threads, set before any thread starts.

    The recorder thread builds ~100 KB strings per exchange; in a per-thread arena the freed memory was
    not reused by the event loop's thread, and peak RSS under load settled ~60 MB higher (measured with
    the benchmark at c=50, five rounds). Threads hardly contend for the arena: they share the GIL anyway.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc (macOS, musl): nothing to tune
        return
    m_arena_max = -8
    libc.mallopt(m_arena_max, 1)


class Command(BaseCommand):
    help = "Apply migrations, seed the default route from the environment, and serve on HOST:PORT."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--host", default=os.environ.get("SWITCHBOARD_HOST", "127.0.0.1"))
        parser.add_argument("--port", type=int, default=int(os.environ.get("SWITCHBOARD_PORT", "8082")))
        # `switchboard serve --workers N` binds HOST:PORT once and hands each worker the socket.
        parser.add_argument("--fd", type=int, default=None, help="serve on this inherited listening socket")

    def handle(self, *args: Any, host: str, port: int, fd: int | None = None, **options: Any) -> None:
        _one_malloc_arena()
        # The routing seed refuses a backend that points at our own address: it needs to know the port.
        # The address also decides the accepted Host names and whether a login is required.
        access.listen_on(host, port)
        if problems := access.startup_problems():
            raise CommandError("refusing to start:\n" + "\n".join(f"  - {p}" for p in problems))
        call_command("migrate", interactive=False, verbosity=0)
        from proxy.seed import ensure_seeded

        ensure_seeded()
        self._announce_access(host)
        from daphne.cli import CommandLineInterface  # installs Twisted's asyncio reactor

        _lighter_requests()
        _flush_recorder_on_shutdown()
        self.stdout.write(f"Switchboard on http://{host}:{port}  (dashboard: /, API: /v1/messages)")
        self.stdout.flush()
        sys.argv = ["daphne"]
        # An explicit endpoint for its backlog: the default listen queue of 50 resets connections when
        # a burst of clients (c=200) connects at once.
        interface = host.replace(":", r"\:")
        endpoint = (
            f"fd:fileno={fd}" if fd is not None else f"tcp:port={port}:interface={interface}:backlog=1024"
        )
        args = ["-e", endpoint, "--proxy-headers"]
        # An access log line per request costs CPU on the hot path; opt in with SWITCHBOARD_ACCESS_LOG=1.
        args += ["--access-log", "-"] if os.environ.get("SWITCHBOARD_ACCESS_LOG") else ["-v", "0"]
        CommandLineInterface().run([*args, "proxy.asgi:application"])
        _exit_without_finalizing()

    def _announce_access(self, host: str) -> None:
        """Say how the dashboard is protected; on the first start that needs a login, make the admin."""
        if host in ("0.0.0.0", "::", "[::]"):
            self.stdout.write(
                f"Listening on every interface: accepted Host names are {', '.join(settings.ALLOWED_HOSTS)}; "
                "add the names clients use to SWITCHBOARD_ALLOWED_HOSTS."
            )
        if not access.login_required():
            return
        why = f" ({access.exposure()})" if access.exposed() else ""
        self.stdout.write(f"Dashboard login required{why}.")
        password = access.ensure_first_admin()
        if password:
            self.stdout.write(
                f"Created dashboard user 'admin' with password: {password}\n"
                "  (shown this once; `python manage.py changepassword admin` sets another)"
            )


def _lighter_requests() -> None:
    """daphne's request, without two things Twisted does for every request that daphne never uses.

    - Form parsing: for every POST Twisted parses the Content-Type with the `email` package to fill
      `request.args` (daphne hands the ASGI app the raw body; Django parses forms itself). It was ~4% of
      the proxy's CPU per request (py-spy, non-streaming c=1). `parsePOSTFormSubmission` is the public
      switch of `twisted.web.http.Request`.
    - Twisted's copy of the body, kept until the response ends (for a stream, minutes): daphne has
      already handed the app its own copy by the time `process()` is done.
    daphne's HTTP factory builds its protocol with `daphne.http_protocol.WebRequest`: a subclass put
    there changes only that.
    """
    from daphne import http_protocol

    base = http_protocol.WebRequest

    class WebRequest(base):  # type: ignore[misc,valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["parsePOSTFormSubmission"] = False
            super().__init__(*args, **kwargs)

        def process(self) -> Any:
            processed = super().process()  # a Deferred: done once the body is queued for the app
            processed.addBoth(self._release_body)
            return processed

        def _release_body(self, result: Any) -> Any:
            content = getattr(self, "content", None)
            if content is not None and not content.closed:
                content.close()
            return result

    http_protocol.WebRequest = WebRequest


def _flush_recorder_on_shutdown() -> None:
    """On SIGINT/SIGTERM, write every queued exchange while the event loop still runs."""
    import asyncio

    from twisted.internet import defer, reactor

    from proxy.recorder import recorder

    def flush() -> defer.Deferred[None]:
        return defer.Deferred.fromFuture(asyncio.ensure_future(recorder.flush_for_shutdown()))

    reactor.addSystemEventTrigger("before", "shutdown", flush)  # type: ignore[attr-defined]


def _exit_without_finalizing() -> None:
    """Exit once the recorder is closed, skipping the interpreter's final garbage collection.

    Python 3.11 can segfault there: closing a coroutine left waiting in asyncio.Queue.get (daphne keeps
    one per connection) formats a repr after the modules it needs are gone (reproduced: SIGTERM under
    load, exit 139 in Py_FinalizeEx). Nothing is left to clean up by then: the exchanges are written,
    the database connections closed, the sockets closed by the reactor.
    """
    import logging

    from proxy.recorder import recorder

    try:
        recorder.close()
    except Exception:  # a database that stopped answering: say so, still exit
        logging.getLogger(__name__).exception("recorder: closing at shutdown failed")
    finally:
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
