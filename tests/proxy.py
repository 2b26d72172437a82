"""A TCP proxy on loopback, to cut a process off from its database, or leave it
talking to a database gone silent, and reconnect it."""

from __future__ import annotations

import asyncio
import threading


class Proxy:
    """Forwards 127.0.0.1:<port> to a target; ``cut()`` drops every connection and refuses
    new ones (as a stopped database would), ``restore()`` listens again on the same port.

    ``freeze()`` forwards nothing more, either way, but keeps every connection open and
    accepts new ones (as a failed-over address, a stateful firewall that lost its state,
    or a network dropping packets look from the client); ``thaw()`` forwards again."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.loop = asyncio.new_event_loop()
        self.flowing = asyncio.Event()
        self.loop.call_soon_threadsafe(self.flowing.set)
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server: asyncio.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()
        self.generation = 0  # one more at each cut: a connection opened across one is dropped
        self.port = 0
        self.restore()

    def _run(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=10)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                await self.flowing.wait()
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        generation = self.generation
        self.writers.add(writer)
        await self.flowing.wait()
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self.writers |= {writer, upstream_writer}
        if generation != self.generation:  # cut while it connected: dropped, as the others
            for each in (writer, upstream_writer):
                each.transport.abort()
            return
        await asyncio.gather(
            self._pipe(reader, upstream_writer), self._pipe(upstream_reader, writer)
        )

    async def _start(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _stop(self) -> None:
        self.generation += 1
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
            self.server = None
        for writer in self.writers:  # kept: none is left to the garbage collector, open
            writer.transport.abort()
        await asyncio.sleep(0)  # the aborted sockets closed (their connection_lost runs)

    def restore(self) -> None:
        self._run(self._start())

    def cut(self) -> None:
        self._run(self._stop())

    def freeze(self) -> None:
        self.loop.call_soon_threadsafe(self.flowing.clear)

    def thaw(self) -> None:
        self.loop.call_soon_threadsafe(self.flowing.set)

    async def _finish(self) -> None:
        # Whatever is still running (a connection opening upstream) ends here, and every
        # connection with it: none is left to the garbage collector, open.
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for writer in self.writers:
            writer.transport.abort()
        # And any connection accepted whose handler never ran: every transport of the loop.
        for transport in list(getattr(self.loop, "_transports", {}).values()):
            transport.abort()
        for _ in range(3):  # the aborted sockets closed (their connection_lost runs)
            await asyncio.sleep(0)
        self.writers.clear()

    def close(self) -> None:
        self.thaw()
        self.cut()
        self._run(self._finish())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)
        self.loop.close()
