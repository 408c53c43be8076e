"""`python manage.py serve`: migrate, seed the default route, then run daphne (proxy + dashboard)."""

from __future__ import annotations

import ctypes
import os
import sys
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from proxy.security import access


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
        # Migrations first: whether client keys exist (a reason to start or to refuse) is in the database.
        call_command("migrate", interactive=False, verbosity=0)
        if problems := access.startup_problems():
            raise CommandError("refusing to start:\n" + "\n".join(f"  - {p}" for p in problems))
        from proxy.cli.banner import start_banner
        from proxy.routing.seed import ensure_seeded

        banner = start_banner(host=host, port=port, seeded=ensure_seeded())
        self._announce_access(host)
        from daphne.cli import CommandLineInterface  # installs Twisted's asyncio reactor

        _lighter_requests()
        _redacted_access_log()
        sys.argv = ["daphne"]
        # An explicit endpoint for its backlog: the default listen queue of 50 resets connections when
        # a burst of clients (c=200) connects at once.
        interface = host.replace(":", r"\:")
        endpoint = (
            f"fd:fileno={fd}" if fd is not None else f"tcp:port={port}:interface={interface}:backlog=1024"
        )
        # No --proxy-headers: any client could claim a loopback address in X-Forwarded-For, and only
        # loopback clients are served without a client key (proxy/security/clientkeys.py).
        daphne_args = ["-e", endpoint]
        # An access log line per request costs CPU on the hot path; opt in with SWITCHBOARD_ACCESS_LOG=1.
        daphne_args += ["--access-log", "-"] if os.environ.get("SWITCHBOARD_ACCESS_LOG") else ["-v", "0"]
        argv = [*daphne_args, "proxy.asgi:application"]
        code = _run_announced(
            CommandLineInterface(), argv, banner=banner, host=host, port=port, server_class=_graceful_server()
        )
        _exit_without_finalizing(code)

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


def _run_announced(
    cli: Any, argv: list[str], *, banner: str, host: str, port: int, server_class: type
) -> int:
    """Run daphne, printing the banner only once the port is bound; the exit code (1: could not listen).

    daphne alone would log "Listen failure" after a banner had claimed success, then exit 1: instead we
    say why in our own words (a busy port as such) and exit 1.
    """
    import errno

    from twisted.internet.error import CannotListenError

    failure: list[str] = []

    class AnnouncingServer(server_class):  # daphne is untyped: its classes are Any to mypy
        def listen_success(self, listening: Any) -> None:
            super().listen_success(listening)
            sys.stdout.write(banner + "\n")
            sys.stdout.flush()

        def listen_error(self, error: Any) -> None:
            reason = error.value.socketError if error.check(CannotListenError) else None
            if getattr(reason, "errno", None) == errno.EADDRINUSE:
                failure.append(
                    f"Switchboard: port {port} on {host} is busy: another program (or another Switchboard) "
                    "is listening there. Stop it, or start on another port: "
                    f"python manage.py serve --port {port + 1}"
                )
            else:
                failure.append(f"Switchboard: cannot listen on {host}:{port}: {error.getErrorMessage()}")
            self.stop()

    cli.server_class = AnnouncingServer
    try:
        cli.run(argv)
    except SystemExit:  # daphne's exit(1) when it could not listen
        if not failure:
            raise
    if failure:
        sys.stderr.write(failure[0] + "\n")
        return 1
    return 0


def _redacted_access_log() -> None:
    """daphne's access log (SWITCHBOARD_ACCESS_LOG=1) prints each request line as sent, its query string
    included: a key there (`?key=`, `?api_key=`) is redacted like everywhere else (security/redact.py)."""
    from daphne.access import AccessLogGenerator

    from proxy.security.redact import redact

    write_entry = AccessLogGenerator.write_entry

    def write_redacted(
        self: AccessLogGenerator, host: Any, date: Any, request: str, *args: Any, **kw: Any
    ) -> None:
        write_entry(self, host, date, redact(request), *args, **kw)

    AccessLogGenerator.write_entry = write_redacted


def _lighter_requests() -> None:
    """daphne's request, without two things Twisted does for every request that daphne never uses.

    - Form parsing: for every POST Twisted parses the Content-Type with the `email` package to fill
      `request.args` (daphne hands the ASGI app the raw body; Django parses forms itself). It was ~4% of
      the proxy's CPU per request (py-spy, non-streaming c=1). `parsePOSTFormSubmission` is the public
      switch of `twisted.web.http.Request`.
    - Twisted's copy of the body, kept until the response ends (for a stream, minutes): daphne has
      already handed the app its own copy by the time `process()` is done.
    - A body over the size limit is not kept at all (Twisted would spool it to a temporary file and
      daphne queue all of it for the app): the app refuses it by its Content-Length, or by the byte
      count when it came chunked (BoundedBody).
    daphne's HTTP factory builds its protocol with `daphne.http_protocol.WebRequest`: a subclass put
    there changes only that.
    """
    from daphne import http_protocol
    from django.conf import settings

    from proxy.http.handler import BoundedBody, refuse_unsent_body

    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE  # the API's limit, with room for a dashboard form

    class WebRequest(http_protocol.WebRequest):
        content: Any  # Twisted's file for the body (a BytesIO, or a temporary file), or a BoundedBody

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["parsePOSTFormSubmission"] = False
            super().__init__(*args, **kwargs)

        def gotLength(self, length: int | None) -> None:
            if length is not None and length > limit:
                self.content = BoundedBody(None, 0)  # refused by its length: nothing kept
                # The request line is parsed before the headers; Twisted keeps it on the channel.
                path = getattr(self.channel, "_path", b"").decode("latin-1")
                expect = self.requestHeaders.getRawHeaders(b"expect") or [b""]
                if path.startswith("/v1/") and expect[0].lower() == b"100-continue":
                    self.requestHeaders.removeHeader(b"expect")  # no `100 Continue`: the body is not wanted
                    headers = {
                        k.decode("latin-1").lower(): v[0].decode("latin-1")
                        for k, v in self.requestHeaders.getAllRawHeaders()
                    }
                    refusal = refuse_unsent_body(path=path, headers=headers, length=length)
                    self.channel.transport.write(refusal)
                    self.channel.transport.loseConnection()
                    self.refused = True
            else:
                super().gotLength(length)
                if length is None:  # chunked: kept up to one byte past the limit, then counted only
                    self.content = BoundedBody(self.content, limit + 1)

        def process(self) -> Any:
            if getattr(self, "refused", False):  # answered already, before its body (gotLength)
                return None
            processed = super().process()  # a Deferred: done once the body is queued for the app
            processed.addBoth(self._release_body)
            return processed

        def _release_body(self, result: Any) -> Any:
            content = getattr(self, "content", None)
            if content is not None and not content.closed:
                content.close()
            return result

    http_protocol.WebRequest = WebRequest


def _graceful_server() -> type:
    """daphne's Server, stopping gracefully (proxy/ops/shutdown.py): on SIGTERM it stops listening, lets
    requests in flight finish within SWITCHBOARD_SHUTDOWN_GRACE, then cancels what is left (daphne's own
    step, which otherwise comes first) and writes every queued exchange while the loop still runs."""
    import asyncio
    import signal

    from daphne.server import Server
    from django.conf import settings
    from twisted.internet import defer

    from proxy.ops import shutdown
    from proxy.recording.writer import recorder

    class GracefulServer(Server):
        ports: list[Any]

        def listen_success(self, port: Any) -> None:
            self.__dict__.setdefault("ports", []).append(port)
            super().listen_success(port)

        def kill_all_applications(self) -> defer.Deferred[None]:
            loop = asyncio.get_event_loop()
            for port in self.__dict__.get("ports", []):
                port.stopListening()  # new connections are refused from now on
            # Twisted ignores a second signal once stopping; here it means "stop now".
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda *_: loop.call_soon_threadsafe(shutdown.hurry))

            async def stop() -> None:
                await shutdown.drain(settings.SHUTDOWN_GRACE)
                await defer.Deferred.asFuture(super(GracefulServer, self).kill_all_applications(), loop)
                await recorder.flush_for_shutdown()

            return defer.Deferred.fromFuture(asyncio.ensure_future(stop()))

    return GracefulServer


def _exit_without_finalizing(code: int = 0) -> None:
    """Exit once the recorder is closed, skipping the interpreter's final garbage collection.

    Python 3.11 can segfault there: closing a coroutine left waiting in asyncio.Queue.get (daphne keeps
    one per connection) formats a repr after the modules it needs are gone (reproduced: SIGTERM under
    load, exit 139 in Py_FinalizeEx). Nothing is left to clean up by then: the exchanges are written,
    the database connections closed, the sockets closed by the reactor.
    """
    import logging

    from proxy.recording.writer import recorder

    try:
        recorder.close()
    except Exception:  # a database that stopped answering: say so, still exit
        logging.getLogger(__name__).exception("recorder: closing at shutdown failed")
    finally:
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
