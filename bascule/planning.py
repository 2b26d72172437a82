"""Planned windows for people: the times they are given in, and the calendar feed."""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterable

from bascule.model import EPOCH, LATEST_MS, READ_ONLY, InvalidUpdate, Window, utc

PRODUCT = "-//Bascule//Maintenance windows//EN"
SUMMARY_LENGTH = 80
# RFC 5545's TEXT holds no control character but HTAB; its line breaks are written \n.
# So every line separator Python knows becomes a line break (which icalendar writes
# \n), and every other control character a space.
_LINE_BREAKS = re.compile("\r\n|[\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")
_CONTROLS = re.compile("[\x00-\x08\x0e-\x1f\x7f-\x9f]")


def calendar_text(text: str) -> str:
    """``text`` as a calendar's TEXT may hold it."""
    return _CONTROLS.sub(" ", _LINE_BREAKS.sub("\n", text))


def parse_time(text: str, what: str) -> int:
    """An RFC 3339 time with its offset, in epoch milliseconds."""
    try:
        moment = datetime.datetime.fromisoformat(text.upper())  # RFC 3339 allows t and z
    except ValueError:
        raise InvalidUpdate(
            f"{what} must be an RFC 3339 time, such as 2026-12-24T02:00:00Z."
        ) from None
    if moment.tzinfo is None:
        raise InvalidUpdate(f"{what} must say its offset from UTC (Z, or +01:00...).")
    try:
        # In whole milliseconds (as stored), counted exactly: no float to round up.
        ms = (moment - EPOCH) // datetime.timedelta(milliseconds=1)
    except OverflowError:
        ms = LATEST_MS + 1
    if not 0 <= ms <= LATEST_MS:  # what every answer shows it as, in UTC
        raise InvalidUpdate(f"{what} must be a time of the years 1970 to 9999 in UTC.")
    return ms


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
