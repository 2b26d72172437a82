"""Planned windows for people: the times they are given in, and the calendar feed."""

from __future__ import annotations

import datetime
from collections.abc import Iterable

from bascule.maintenance import READ_ONLY, InvalidUpdate, Window, utc

PRODUCT = "-//Bascule//Maintenance windows//EN"
SUMMARY_LENGTH = 80


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
        moment.astimezone(datetime.UTC)  # what every answer shows it as
    except OverflowError:
        raise InvalidUpdate(f"{what} must be a time of the years 1 to 9999 in UTC.") from None
    return int(moment.timestamp() * 1000)


def calendar(windows: Iterable[Window]) -> bytes:
    """An iCalendar document with one event per planned window."""
    from icalendar import Calendar, Event

    feed = Calendar()
    feed.add("prodid", PRODUCT)
    feed.add("version", "2.0")
    feed.add("x-wr-calname", "Maintenance windows")
    for window in windows:
        assert window.planned_start is not None  # a planned window has a start
        message = window.message or "Maintenance"
        first_line = message.strip().splitlines()[0]
        kind = "Read-only maintenance" if window.mode == READ_ONLY else "Maintenance"
        event = Event()
        event.add("uid", f"{window.id}@bascule")
        event.add("dtstamp", utc(window.created_at))
        event.add("dtstart", utc(window.planned_start))
        if window.planned_end is not None:
            event.add("dtend", utc(window.planned_end))
        event.add("summary", f"{kind}: {first_line[:SUMMARY_LENGTH]}")
        event.add("description", f"{message}\n\nPlanned by {window.user}.")
        feed.add_component(event)
    document: bytes = feed.to_ical()
    return document
