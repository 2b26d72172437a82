"""The HTTP/1.1 protocol ``bascule serve`` runs: uvicorn's (httptools), with bounds.

uvicorn bounds neither the size nor the number of a request's headers when it parses
them with httptools, nor the time a client takes to send them or its body: a client
could hold a connection and its memory for ever, a header line every few seconds.
This protocol answers 431 to headers over MAX_HEADER_BYTES or MAX_HEADERS; answers 408
and closes a connection whose request has not all its headers ``timeout`` seconds
after its first byte (or after the connection opened); and closes one whose body
comes slower than ``timeout`` seconds plus one per BODY_MIN_RATE bytes. Run it under
uvicorn with ``--http bascule.protocol:BoundedHttpToolsProtocol`` (the timeout is then
BASCULE_HEADER_TIMEOUT's).

Every request passes through three of its methods, so they do as little as they can:
no timer per request, one sweep per server every SWEEP_INTERVAL looks at them all.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from itertools import chain
from types import SimpleNamespace
from typing import Any

from uvicorn.protocols.http.httptools_impl import (
    STATUS_LINE,
    HttpToolsProtocol,
    RequestResponseCycle,
)
from uvicorn.server import ServerState

from bascule.answers import Code, error_answer
from bascule.config import Settings

log = logging.getLogger(__name__)

# The request line and headers (nginx's default buffers hold 4 x 8 KiB; browsers send
# well under 8 KiB), and how many header lines.
MAX_HEADER_BYTES = 16384
MAX_HEADERS = 100
BODY_MIN_RATE = 1024  # bytes per second, beyond the timeout
SWEEP_INTERVAL = 0.5


def _answer(status: int, message: str) -> bytes:
    headers, body = error_answer(Code.BAD_PARAMETER, message)
    lines = [b"%s: %s\r\n" % header for header in [*headers, (b"connection", b"close")]]
    return b"".join([STATUS_LINE[status], *lines, b"\r\n", body])


TOO_LARGE = _answer(
    431,
    f"The request headers are larger than {MAX_HEADER_BYTES} bytes, or more than {MAX_HEADERS}.",
)
TOO_SLOW = _answer(408, "The request was not sent in time.")
# A request that is not HTTP/1.1 (a control byte in a header, a malformed line): in the
# envelope too, where uvicorn answers a line of plain text.
MALFORMED = _answer(400, "The request is not valid HTTP/1.1.")


class QuietCycle(RequestResponseCycle):
    """A request whose refusal by the gate is left out of the access log: the gate
    counts refusals, and logs them as one line per interval (gate.RefusalLog)."""

    @property
    def access_log(self) -> bool:  # type: ignore[override]
        return bool(self.__dict__.get("access_log")) and "bascule.refused" not in self.scope


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, bounded in header size and count and in time."""

    timeout: float = Settings.from_env().header_timeout

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._awaiting_headers = True
        self._header_bytes = 0  # received while a request's headers were awaited
        self._body_bytes = 0  # received since
        self._deadline = 0.0  # for the headers, then for the body (loop.time())

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._deadline = self.loop.time() + self.timeout
        _sweep_later(self.server_state, self.loop)

    def data_received(self, data: bytes) -> None:
        if self._awaiting_headers:
            self._header_bytes += len(data)
        else:
            self._body_bytes += len(data)
        super().data_received(data)
        # Refused as soon as they are too many bytes: not kept until the parser sees
        # the end of a header that never ends.
        if self._awaiting_headers and self._header_bytes > MAX_HEADER_BYTES:
            self._refuse(TOO_LARGE)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._awaiting_headers = True
        self._deadline = self.loop.time() + self.timeout

    def on_headers_complete(self) -> None:
        self._awaiting_headers = False
        self._header_bytes = self._body_bytes = 0
        headers = self.headers
        size = len(self.url) + sum(map(len, chain.from_iterable(headers))) + 4 * len(headers)
        if len(headers) > MAX_HEADERS or size > MAX_HEADER_BYTES:
            self._refuse(TOO_LARGE)  # before the application is started: it never runs
            # What follows in this packet (a body) is dropped by uvicorn's callbacks.
            self.cycle = SimpleNamespace(  # type: ignore[assignment]
                response_complete=True, more_body=False, message_event=asyncio.Event()
            )
            return
        super().on_headers_complete()
        # (No new cycle for a WebSocket upgrade: the last request's, or none, is left.)
        if self.access_log and type(self.cycle) is RequestResponseCycle:
            self.cycle.__class__ = QuietCycle  # its access_log now asks the scope
        self._deadline = self.loop.time() + self.timeout

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to a request its parser cannot read, in the envelope."""
        self._refuse(MALFORMED)

    def _refuse(self, answer: bytes) -> None:
        if not self.transport.is_closing():
            self.transport.write(answer)
            self.transport.close()

    def check_time(self, now: float) -> None:
        """Close the connection if its request is late (called by the sweep)."""
        if self.transport.is_closing():
            return
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:  # a request is being served
            late = now > self._deadline + self._body_bytes / BODY_MIN_RATE
            # With reading paused, the application is the slow one, not the client.
            if cycle.more_body and late and not self.flow.read_paused:
                client = f"{self.client[0]}:{self.client[1]}" if self.client else "a client"
                log.info("%s: body too slow, connection closed", client)
                self.transport.close()
            return
        if self._awaiting_headers and now > self._deadline:
            self._refuse(TOO_SLOW)


# One sweep per server (its ServerState), while it has connections.
_sweeps: weakref.WeakKeyDictionary[ServerState, asyncio.TimerHandle] = weakref.WeakKeyDictionary()


def _sweep_later(state: ServerState, loop: asyncio.AbstractEventLoop) -> None:
    if state not in _sweeps:
        _sweeps[state] = loop.call_later(SWEEP_INTERVAL, _sweep, state, loop)


def _sweep(state: ServerState, loop: asyncio.AbstractEventLoop) -> None:
    del _sweeps[state]
    now = loop.time()
    for connection in list(state.connections):
        if isinstance(connection, BoundedHttpToolsProtocol):
            connection.check_time(now)
    if state.connections:
        _sweep_later(state, loop)


def bounded_protocol(timeout: float) -> type[BoundedHttpToolsProtocol]:
    """The protocol with this ``timeout`` (for a server started in this process)."""
    return type("BoundedHttpToolsProtocol", (BoundedHttpToolsProtocol,), {"timeout": timeout})
