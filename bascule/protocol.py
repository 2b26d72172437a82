"""The HTTP/1.1 protocol ``bascule serve`` runs: uvicorn's (httptools), with bounds.

uvicorn bounds neither the size nor the number of a request's headers when it parses
them with httptools, nor the time a client takes to send them or its body: a client
could hold a connection and its memory for ever, a header line every few seconds.
This protocol answers 431 to headers over MAX_HEADER_BYTES or MAX_HEADERS, closes a
connection whose headers are not all there ``header_timeout`` seconds after it opened
(or after its previous answer), with a 408, and one whose body comes slower than
``header_timeout`` seconds plus one per BODY_MIN_RATE bytes. Run it under uvicorn with
``--http bascule.protocol:BoundedHttpToolsProtocol`` (the timeout is then
BASCULE_HEADER_TIMEOUT's).
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from bascule.config import Settings
from bascule.errors import Code, error_envelope

log = logging.getLogger(__name__)

# The request line and headers (nginx's default buffers hold 4 x 8 KiB; browsers send
# well under 8 KiB), and how many header lines.
MAX_HEADER_BYTES = 16384
MAX_HEADERS = 100
BODY_MIN_RATE = 1024  # bytes per second, beyond the timeout


def _answer(status: int, message: str) -> bytes:
    body = json.dumps(error_envelope(Code.BAD_PARAMETER, message)).encode()
    return b"".join(
        [
            STATUS_LINE[status],
            b"content-type: application/json\r\n",
            b"content-length: " + str(len(body)).encode() + b"\r\n",
            b"connection: close\r\n\r\n",
            body,
        ]
    )


TOO_LARGE = _answer(
    431,
    f"The request headers are larger than {MAX_HEADER_BYTES} bytes, or more than {MAX_HEADERS}.",
)
TOO_SLOW = _answer(408, "The request was not sent in time.")


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, bounded in header size and count and in time."""

    timeout: float = Settings.from_env().header_timeout

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_bytes = 0  # of the request being read, until its headers are complete
        self._header_count = 0
        self._awaiting_headers = True
        self._too_large = False
        self._clock: asyncio.TimerHandle | None = None
        self._body_deadline = 0.0

    # -- the clock -------------------------------------------------------------------------

    def _start_clock(self, delay: float) -> None:
        self._stop_clock()
        self._clock = self.loop.call_later(delay, self._on_clock)

    def _stop_clock(self) -> None:
        if self._clock is not None:
            self._clock.cancel()
            self._clock = None

    def _on_clock(self) -> None:
        self._clock = None
        if self.transport.is_closing():
            return
        if self._awaiting_headers:
            log.info("%s: headers not complete in time, connection closed", self._peer())
            self._refuse(TOO_SLOW)
            return
        if self.cycle is None or not self.cycle.more_body:
            return
        left = self._body_deadline - self.loop.time()
        if left > 0 or self.flow.read_paused:  # paused: the application is the slow one
            self._start_clock(max(left, 1.0))
            return
        log.info("%s: body too slow, connection closed", self._peer())
        self.transport.close()

    def _peer(self) -> str:
        return f"{self.client[0]}:{self.client[1]}" if self.client else "a client"

    def _refuse(self, answer: bytes) -> None:
        self._stop_clock()
        self.transport.write(answer)
        self.transport.close()

    # -- the protocol ----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_clock(self.timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_clock()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._awaiting_headers:
            self._header_bytes += len(data)
        super().data_received(data)
        if self.transport.is_closing():
            return
        # Refused as soon as they are too many bytes: not kept until the parser sees
        # the end of a header that never ends.
        if self._too_large or (self._awaiting_headers and self._header_bytes > MAX_HEADER_BYTES):
            self._refuse(TOO_LARGE)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._header_count = 0
        self._awaiting_headers = True

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        if self._header_count > MAX_HEADERS:
            self._too_large = True
            return
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._awaiting_headers = False
        size = len(self.url) + sum(len(n) + len(v) + 4 for n, v in self.headers)
        if self._too_large or size > MAX_HEADER_BYTES:
            self._too_large = True  # refused once the parser returns; the app never runs
            return
        self._header_bytes = 0
        super().on_headers_complete()
        if self.cycle is not None and self.cycle.more_body:
            self._body_deadline = self.loop.time() + self.timeout
            self._start_clock(self.timeout)
        else:
            self._stop_clock()

    def on_body(self, body: bytes) -> None:
        if self._too_large:
            return
        self._body_deadline += len(body) / BODY_MIN_RATE
        super().on_body(body)

    def on_message_complete(self) -> None:
        if self._too_large:
            return
        super().on_message_complete()
        self._stop_clock()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.transport.is_closing():
            return
        if self.cycle is None or self.cycle.response_complete:
            # Nothing pipelined is running: the next request's headers are awaited now.
            self._awaiting_headers = True
            self._header_bytes = 0
            self._start_clock(self.timeout)


def bounded_protocol(timeout: float) -> type[BoundedHttpToolsProtocol]:
    """The protocol with this ``timeout`` (for a server started in this process)."""
    return type("BoundedHttpToolsProtocol", (BoundedHttpToolsProtocol,), {"timeout": timeout})
