"""What a refused visitor sees: the maintenance page for a browser (the Accept choice),
the envelope for anyone else, and Retry-After (the time left to a planned end)."""

from __future__ import annotations

import html
import string
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from bascule.answers import FULL_REFUSAL, READ_ONLY_REFUSAL, Code, encoded, error_envelope
from bascule.config import MAX_RETRY_AFTER
from bascule.exchange import NOT_FRAMED
from bascule.model import READ_ONLY, now_ms, utc

if TYPE_CHECKING:
    from bascule.model import MaintenanceState

Answer = tuple[int, list[tuple[bytes, bytes]], bytes]
# How much of a request the refusal reads to choose between the page and the envelope.
ACCEPT_PREFIX = 1024
SCANNED_HEADERS = 64
DEFAULT_PAGE = Path(__file__).with_name("templates") / "maintenance.html"
DEFAULT_MESSAGE = "Maintenance is in progress."

HOUR_MS = 3_600_000


def prefers_html(accept: bytes) -> bool:
    """Whether an Accept header ranks text/html above JSON (as browsers' do).

    ``*/*`` alone, no Accept, or JSON ranked as high all mean an API client. Only the
    first ACCEPT_PREFIX bytes are read (browsers send a few hundred), so that the cost
    is bounded whatever the header.
    """
    accept = accept[:ACCEPT_PREFIX]
    if accept.lower().find(b"html") == -1:  # not "in": see QUERY_MARK
        return False
    from werkzeug.datastructures import MIMEAccept
    from werkzeug.http import parse_accept_header

    ranked = parse_accept_header(accept.decode("latin-1"), MIMEAccept)
    html_q = max(ranked.quality("text/html"), ranked.quality("application/xhtml+xml"))
    json_q = max(
        [ranked.quality("application/json")]
        + [q for media, q in ranked if media.lower().endswith("+json")]
    )
    return html_q > 0 and html_q > json_q


READ_ONLY_TEXT = "You can still browse this service meanwhile, but not change anything."


class Page:
    """The maintenance page for browsers: a template, rendered once per state."""

    def __init__(self, template: Path, retry_after: int) -> None:
        try:
            self.template = string.Template(template.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ValueError(f"cannot read the page template {template}: {exc.strerror}") from None
        self.retry_after = retry_after
        self._cache: tuple[MaintenanceState, tuple[int, bool, bool], bytes] | None = None

    def render(self, state: MaintenanceState, clock: Callable[[], int] = now_ms) -> bytes:
        """The page for ``state`` (rendered again only when the state changes, or, in a
        planned window, the minute left to its end by ``clock``, the database's)."""
        now = 0 if state.planned_end is None else clock()  # only a planned end needs it
        seconds = retry_after(state, self.retry_after, now)
        minutes = max(1, round(seconds / 60))
        late = state.planned_end is not None and state.planned_end <= now
        # to the second when it is less than an hour away, to the minute further
        soon = state.planned_end is not None and abs(state.planned_end - now) < HOUR_MS
        key = (minutes, late, soon)
        cached = self._cache
        if cached is not None and cached[0] is state and cached[1] == key:
            return cached[2]
        since = utc(state.started_at)
        progress = state.progress_percent
        planned = ""
        if state.planned_end is not None:
            shown = "%Y-%m-%d %H:%M:%S" if soon else "%Y-%m-%d %H:%M"
            planned = f"Planned to end at {utc(state.planned_end):{shown}} UTC"
            planned += "; it is taking longer than planned." if late else "."
        values = {
            "message": latest_message(state),
            "progress": str(progress or 0),
            "progress_text": f"{progress}%" if progress is not None else "none posted yet",
            "progress_hidden": "" if progress is not None else "hidden",
            "since_iso": since.isoformat(timespec="seconds"),
            "since_text": since.strftime("%Y-%m-%d %H:%M UTC"),
            "retry_after": str(seconds),
            "retry_after_text": f"{minutes} minute{'s' if minutes > 1 else ''}",
            "poll_seconds": str(max(1, min(5, self.retry_after))),
            "mode_text": READ_ONLY_TEXT if state.read_only else "",
            "planned_text": planned,
        }
        body = self.template.safe_substitute(
            {name: html.escape(value) for name, value in values.items()}
        ).encode()
        self._cache = (state, key, body)
        return body


def retry_after(state: MaintenanceState, configured: int, now: int) -> int:
    """The seconds a refusal announces: the time left to a planned end (a day at most),
    else (none, or overrunning) the configured value."""
    if state.planned_end is None or state.planned_end <= now:
        return configured
    return min(MAX_RETRY_AFTER, -(-(state.planned_end - now) // 1000))


class Refusals:
    """The 503 a refused visitor gets: the page to a browser, the envelope to anyone
    else, with Retry-After: the configured seconds, or the time left to a planned end.

    The envelope is Alien4Cloud's refusal (``data`` null, ``error`` code 0 and its
    message), and beside them what a browser's page says, in ``maintenance``, which
    Alien4Cloud's clients ignore: the operator's latest message, the mode, since when,
    the planned end, the seconds to retry after, the progress if one was posted.
    Rendered once per state (and per second left to a planned end)."""

    def __init__(self, page: Page, clock: Callable[[], int]) -> None:
        self.page, self.clock = page, clock
        self._cache: tuple[MaintenanceState, int, list[tuple[bytes, bytes]], bytes] | None = None

    def seconds(self, state: MaintenanceState) -> int:
        """The Retry-After of a refusal in ``state``."""
        if state.planned_end is None:  # no clock to read
            return self.page.retry_after
        return retry_after(state, self.page.retry_after, self.clock())

    def envelope(self, state: MaintenanceState) -> tuple[list[tuple[bytes, bytes]], bytes]:
        """The headers and body of the refusal's envelope in ``state``."""
        seconds = self.seconds(state)
        cached = self._cache
        if cached is not None and cached[0] is state and cached[1] == seconds:
            return cached[2], cached[3]
        refused = READ_ONLY_REFUSAL if state.mode == READ_ONLY else FULL_REFUSAL
        document = error_envelope(Code.MAINTENANCE, refused)
        document["maintenance"] = {
            "message": latest_message(state),
            "mode": state.mode,
            "since": state.started_at,
            "plannedEnd": state.planned_end,
            "retryAfter": seconds,
            "progress": state.progress_percent,
        }
        body = encoded(document)
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"retry-after", str(seconds).encode()),
            (b"cache-control", b"no-store"),
        ]
        self._cache = (state, seconds, headers, body)
        return headers, body

    def answer(
        self, state: MaintenanceState, headers: list[tuple[bytes, bytes]], head: bool
    ) -> Answer:
        """The answer to a refused request with ``headers`` in ``state``."""
        # Browsers send Accept among their first headers; a request with thousands of
        # headers (a server that lets them through) costs no more than one with a few.
        for name, value in headers[:SCANNED_HEADERS]:
            if name == b"accept":
                if prefers_html(value):
                    body = self.page.render(state, self.clock)
                    page_headers = [
                        (b"content-type", b"text/html; charset=utf-8"),
                        (b"content-length", str(len(body)).encode()),
                        (b"retry-after", str(self.seconds(state)).encode()),
                        (b"cache-control", b"no-store"),
                        *NOT_FRAMED,
                    ]
                    return 503, page_headers, b"" if head else body
                break
        answer_headers, body = self.envelope(state)
        return 503, answer_headers, b"" if head else body


def latest_message(state: MaintenanceState) -> str:
    """What the page says: the operator's latest message (see MaintenanceState)."""
    return state.latest_message() or DEFAULT_MESSAGE
