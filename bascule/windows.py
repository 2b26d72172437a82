"""Planned maintenance windows: planning, cancelling, the list and the calendar feed, the
times people give them in, and starting and ending them on time, exactly once, from
every instance's monitor (the Scheduler) and every command.

Nothing here knows about HTTP. A window that starts becomes the current maintenance
(maintenance.py's state machine then holds it); the history keeps it once it ends.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import re
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import SQLAlchemyError

from bascule import events
from bascule.db import note_failure
from bascule.model import (
    CANCELLED,
    EPOCH,
    FULL,
    LATEST_MS,
    MAX_PLANNED,
    PLANNED,
    PLANNED_END_MESSAGE,
    READ_ONLY,
    SCHEDULE_ACTOR,
    SKIPPED,
    STARTED_MESSAGE,
    Actor,
    ActorKind,
    InvalidUpdate,
    LogEntry,
    MaintenanceState,
    NoSuchWindow,
    StateListener,
    TooManyWindows,
    Window,
    WindowNotPlanned,
    WindowsOverlap,
    check_message,
    check_mode,
    require_rights,
    rfc3339,
    utc,
)

if TYPE_CHECKING:
    from bascule.monitor import Monitor
    from bascule.store import Store, Tx

log = logging.getLogger(__name__)


class Windows:
    """Plans, lists, cancels, starts and ends the planned windows on behalf of actors."""

    def __init__(
        self,
        store: Store,
        listener: StateListener | None = None,
        clock: Callable[[], int] | None = None,
    ) -> None:
        self.store = store
        self.listener = listener
        # The database's clock, unless told another (tests).
        self.clock = clock or store.now

    def plan(
        self,
        actor: Actor,
        start: int,
        end: int | None,
        message: str,
        mode: str = FULL,
        auto_end: bool = False,
    ) -> Window:
        """Plan a window from ``start`` to ``end`` (epoch ms; no end: until switched off)."""
        require_rights(actor)
        check_message(message, "message")
        check_mode(mode)
        now = self.clock()
        if start <= now:
            raise InvalidUpdate("start must be in the future.")
        if end is not None and end <= start:
            raise InvalidUpdate("end must come after start.")
        if auto_end and end is None:
            raise InvalidUpdate("autoEnd needs an end.")
        if (end or start) > LATEST_MS:
            raise InvalidUpdate("start and end must come before the year 10000 in UTC.")
        window = Window(
            id=0,
            status=PLANNED,
            user=actor.name,
            user_triggered=actor.kind is not ActorKind.PROCESS,
            mode=mode,
            created_at=now,
            planned_start=start,
            planned_end=end,
            message=message,
            auto_end=auto_end,
        )
        with self.store.write("schedule") as tx:
            planned = tx.planned_windows()
            if len(planned) >= MAX_PLANNED:
                raise TooManyWindows()
            for other in planned:
                if overlap(other, start, end):
                    raise WindowsOverlap(other)
            window_id = tx.insert_window(window)
            window = dataclasses.replace(window, id=window_id)
            events.window_event(tx, events.PLANNED, window, actor, now)
        self._changed()
        return window

    def planned(self, offset: int = 0, limit: int = MAX_PLANNED) -> list[Window]:
        """The windows to come, soonest first (``limit`` of them from ``offset``)."""
        with self.store.read() as tx:
            return tx.planned_windows()[offset : offset + limit]

    def cancel(self, actor: Actor, window_id: int) -> None:
        """Cancel a planned window."""
        require_rights(actor)
        # The state's lock first, as run_schedule takes it: a window starts or is cancelled.
        with self.store.write("state", "schedule") as tx:
            window = tx.get_window(window_id)
            if window is None:
                raise NoSuchWindow(window_id, "planned window")
            if window.status != PLANNED:
                raise WindowNotPlanned(window)
            now = self.clock()
            tx.close_window(window_id, CANCELLED, actor.name, now)
            events.window_event(tx, events.CANCELLED, window, actor, now)
        self._changed()

    def run_schedule(self) -> bool:
        """Start the planned windows whose time came, and end the one due to end by
        itself; True when something changed. Whoever calls it first commits each
        change, exactly once: the write lock orders the callers, and each re-reads."""
        now = self.clock()
        with self.store.read() as tx:
            state = tx.load_state(with_log=False)
            if not (ends_now(state, now) or tx.planned_windows(due_by=now)):
                return False
        with self.store.write("state", "schedule") as tx:
            state = tx.load_state(with_log=False)
            if state is not None and ends_now(state, now):
                entry = LogEntry(now, SCHEDULE_ACTOR, PLANNED_END_MESSAGE)
                tx.append_log(state.window_id, entry)
                tx.end_window(state.window_id, SCHEDULE_ACTOR, now)
                ended = tx.get_window(state.window_id)
                assert ended is not None
                events.ended(tx, ended, SCHEDULE_ACTOR, now)
                state = None
            for due in tx.planned_windows(due_by=now):
                if due.planned_end is not None and due.planned_end <= now:
                    reason: str | None = "Its end came before it could start."
                elif state is not None:
                    reason = (
                        f"Maintenance was already on, held by '{state.user}' since "
                        f"{rfc3339(state.started_at)}."
                    )
                else:
                    reason = None
                if reason is not None:
                    tx.close_window(due.id, SKIPPED, SCHEDULE_ACTOR, now, reason)
                    skipped = dataclasses.replace(due, reason=reason)
                    events.window_event(tx, events.SKIPPED, skipped, SCHEDULE_ACTOR, now)
                else:
                    start_window(tx, due, now)
                    events.started(tx, SCHEDULE_ACTOR, now)
                    state = tx.load_state(with_log=False)
        self._changed()
        return True

    def prune(self, keep_days: int) -> int:
        """Forget the windows that ended more than ``keep_days`` days ago; how many."""
        before = self.clock() - keep_days * 86_400_000
        with self.store.write(None) as tx:
            tx.prune_events(before)  # but those whose deliveries are still pending
            return tx.prune_windows(before)

    def _changed(self) -> None:
        if self.listener is not None:
            self.listener.refresh()


def start_window(tx: Tx, window: Window, now: int) -> None:
    """Start a planned window: the current one from ``now``, held by who planned it, its
    log begun by the schedule, with their message."""
    state = MaintenanceState(window.user, window.user_triggered, 1, now, mode=window.mode)
    tx.start_planned(window, state, now)
    tx.append_log(window.id, LogEntry(now, SCHEDULE_ACTOR, STARTED_MESSAGE))
    if window.message:
        tx.append_log(window.id, LogEntry(now, window.user, window.message))


def overlap(window: Window, start: int, end: int | None) -> bool:
    """Whether ``window`` (planned) and the span from ``start`` to ``end`` share a moment:
    a window without an end counts for its start only (it lasts until someone ends it,
    and a window due meanwhile is skipped, said in the history)."""
    assert window.planned_start is not None
    other_end = window.planned_end or window.planned_start + 1
    return window.planned_start < (end or start + 1) and start < other_end


def ends_now(state: MaintenanceState | None, now: int) -> bool:
    """Whether ``state`` is a planned window due to end by itself by ``now``."""
    return (
        state is not None
        and state.auto_end
        and state.planned_end is not None
        and state.planned_end <= now
    )


class Scheduler:
    """Starts and ends the planned windows on time, called on every turn of the
    monitor's thread: whichever instance (or command) first sees the time commits each
    change, exactly once (Windows.run_schedule). It also forgets the windows older
    than ``keep_days`` (0: keeps them all), once a minute."""

    PRUNE_INTERVAL = 60.0

    def __init__(self, windows: Windows, monitor: Monitor, keep_days: int = 0) -> None:
        self.windows, self.monitor, self.keep_days = windows, monitor, keep_days
        self._next_prune = 0.0
        self._error: str | None = None

    def __call__(self) -> None:
        now = self.windows.clock()
        state, planned = self.monitor.state, self.monitor.planned
        due = bool(planned and (planned[0].planned_start or 0) <= now) or ends_now(state, now)
        try:
            if due:
                self.windows.run_schedule()
            if self.keep_days and time.monotonic() >= self._next_prune:
                self._next_prune = time.monotonic() + self.PRUNE_INTERVAL
                self.windows.prune(self.keep_days)
        except SQLAlchemyError as exc:  # tried again on the next turn
            self._error = note_failure(
                log, self._error, exc, "the planned windows could not be run"
            )
            return
        self._error = None


PRODUCT = "-//Bascule//Maintenance windows//EN"
SUMMARY_LENGTH = 80
# RFC 5545's TEXT holds no control character but HTAB; its line breaks are written \n.
# So every line separator Python knows becomes a line break (which icalendar writes
# \n), and every other control character a space.
_LINE_BREAKS = re.compile("\r\n|[\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")
_CONTROLS = re.compile("[\x00-\x08\x0e-\x1f\x7f-\x9f]")


def announcement(
    state: MaintenanceState | None, planned: Iterable[Window], now: int, notice: int
) -> dict[str, Any]:
    """The wire form of the announcement of planned work: the maintenance on, if any, and
    the windows planned to start within ``notice`` milliseconds from ``now``."""
    current = None
    if state is not None:
        current = {
            "message": state.latest_message(),
            "mode": state.mode,
            "since": rfc3339(state.started_at),
            "plannedEnd": rfc3339(state.planned_end),
        }
    windows = [
        {
            "start": rfc3339(w.planned_start),
            "end": rfc3339(w.planned_end),
            "message": w.message,
            "mode": w.mode,
        }
        for w in planned
        if w.planned_start is not None and w.planned_start <= now + notice
    ]
    return {"current": current, "windows": windows, "noticeSeconds": notice // 1000}


def calendar_text(text: str) -> str:
    """``text`` as a calendar's TEXT may hold it."""
    return _CONTROLS.sub(" ", _LINE_BREAKS.sub("\n", text))


# A time from now, as people say it: "+1h", "+1h30m", "in 30 minutes", "in 2 hours".
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_SHORT = re.compile(r"\+((?:\d{1,6}[smhd])+)")
_SPOKEN = re.compile(
    r"in\s+((?:\d{1,6}\s*(?:seconds?|minutes?|hours?|days?)(?:\s*(?:,|and)?\s*)?)+)", re.I
)
_PART = re.compile(r"(\d{1,6})\s*([smhd])", re.I)


def parse_time(text: str, what: str, now: int | None = None) -> int:
    """An RFC 3339 time with its offset, in epoch milliseconds; given ``now``, a time from
    then too ("+1h", "+1h30m", "in 30 minutes"): the command line's, not the API's."""
    relative = None if now is None else from_now(text.strip())
    if relative is not None:
        assert now is not None
        return _bounded(now + relative * 1000, what)
    try:
        moment = datetime.datetime.fromisoformat(text.upper())  # RFC 3339 allows t and z
    except ValueError:
        also = "" if now is None else ", or a time from now, such as +1h30m or 'in 30 minutes'"
        raise InvalidUpdate(
            f"{what} must be an RFC 3339 time, such as 2026-12-24T02:00:00Z{also}."
        ) from None
    if moment.tzinfo is None:
        raise InvalidUpdate(f"{what} must say its offset from UTC (Z, or +01:00...).")
    try:
        # In whole milliseconds (as stored), counted exactly: no float to round up.
        ms = (moment - EPOCH) // datetime.timedelta(milliseconds=1)
    except OverflowError:
        ms = LATEST_MS + 1
    return _bounded(ms, what)


def _bounded(ms: int, what: str) -> int:
    if not 0 <= ms <= LATEST_MS:  # what every answer shows it as, in UTC
        raise InvalidUpdate(f"{what} must be a time of the years 1970 to 9999 in UTC.")
    return ms


def from_now(text: str) -> int | None:
    """The seconds a time from now says ("+1h30m", "in 2 hours and 30 minutes"), or None
    when it is not one."""
    match = _SHORT.fullmatch(text) or _SPOKEN.fullmatch(text)
    if match is None:
        return None
    return sum(int(n) * UNITS[unit.lower()] for n, unit in _PART.findall(match.group(1)))


def calendar(windows: Iterable[Window]) -> bytes:
    """An iCalendar document with one event per planned window."""
    from icalendar import Calendar, Event

    feed = Calendar()
    feed.add("prodid", PRODUCT)
    feed.add("version", "2.0")
    feed.add("x-wr-calname", "Maintenance windows")
    for window in windows:
        assert window.planned_start is not None  # a planned window has a start
        message = calendar_text(window.message or "Maintenance")
        first_line = message.strip().splitlines()[0]
        kind = "Read-only maintenance" if window.mode == READ_ONLY else "Maintenance"
        event = Event()
        event.add("uid", f"{window.id}@bascule")
        event.add("dtstamp", utc(window.created_at))
        event.add("dtstart", utc(window.planned_start))
        if window.planned_end is not None:
            event.add("dtend", utc(window.planned_end))
        event.add("summary", f"{kind}: {first_line[:SUMMARY_LENGTH]}")
        event.add("description", f"{message}\n\nPlanned by {calendar_text(window.user)}.")
        feed.add_component(event)
    document: bytes = feed.to_ical()
    return document
