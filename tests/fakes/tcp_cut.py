"""A TCP forwarder on loopback that a test can cut: a database server restarting, as the proxy sees it.

`cut()` resets every forwarded connection and resets new ones as they arrive (the server is down);
`restore()` forwards again. Bytes pass through untouched.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading


class TcpCut:
    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = 0
        self.down = False
        self._writers: set[asyncio.StreamWriter] = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def __enter__(self) -> TcpCut:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    async def _start(self) -> None:
        server = await asyncio.start_server(self._connection, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]

    def cut(self) -> None:
        def reset_all() -> None:
            self.down = True
            for writer in list(self._writers):
                writer.transport.abort()

        self._loop.call_soon_threadsafe(reset_all)

    def restore(self) -> None:
        self._loop.call_soon_threadsafe(setattr, self, "down", False)

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.down:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._writers |= {writer, up_writer}
        try:
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        finally:
            self._writers -= {writer, up_writer}
            for w in (writer, up_writer):
                w.transport.abort()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.transport.abort()
