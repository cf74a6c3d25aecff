"""An in-memory calendar: real implementations, no files, no network.

The state is one module-level `Calendar` (`CALENDAR`); `reset()` empties it, which
tests and demos do before each run. Events sit within one day, times are "HH:MM"
24-hour local times, and event ids are "E1", "E2", ... in creation order.
"""

from __future__ import annotations

import datetime as dtm
from dataclasses import asdict, dataclass

from langchain_core.tools import ToolException

from ._common import catalog_tool


@dataclass
class Event:
    event_id: str
    title: str
    date: str
    start: str
    end: str
    location: str = ""


class Calendar:
    def __init__(self) -> None:
        self.events: dict[str, Event] = {}
        self.next_id = 1

    def add(self, title: str, date: str, start: int, end: int, location: str) -> Event:
        ev = Event(f"E{self.next_id}", title, date, _fmt(start), _fmt(end), location)
        self.events[ev.event_id] = ev
        self.next_id += 1
        return ev

    def on(self, date: str) -> list[Event]:
        return sorted((e for e in self.events.values() if e.date == date), key=lambda e: (e.start, e.event_id))

    def get(self, event_id: str) -> Event:
        ev = self.events.get(event_id.strip().upper())
        if ev is None:
            raise ToolException(f"no event with id {event_id!r}; existing ids: {', '.join(self.events) or 'none'}")
        return ev


CALENDAR = Calendar()


def reset() -> None:
    """Empty the calendar and restart event ids at E1."""
    CALENDAR.__init__()


def _minutes(hhmm: str) -> int:
    try:
        h, m = (int(x) for x in hhmm.strip().split(":"))
    except ValueError:
        raise ToolException(f"invalid time {hhmm!r}: use 24-hour HH:MM, e.g. '14:30'") from None
    if not (0 <= h <= 24 and 0 <= m < 60 and h * 60 + m <= 1440):
        raise ToolException(f"invalid time {hhmm!r}: use 24-hour HH:MM between 00:00 and 24:00")
    return h * 60 + m


def _fmt(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _day(date: str) -> str:
    try:
        return dtm.date.fromisoformat(date.strip()[:10]).isoformat()
    except ValueError:
        raise ToolException(f"invalid date {date!r}: use YYYY-MM-DD") from None


def _conflicts(date: str, start: int, end: int, skip: str = "") -> list[str]:
    return [e.event_id for e in CALENDAR.on(date)
            if e.event_id != skip and _minutes(e.start) < end and start < _minutes(e.end)]


@catalog_tool
def add_calendar_event(title: str, date: str, start_time: str, duration_minutes: int = 60, location: str = "") -> dict:
    """Add an event or meeting to the calendar; overlapping events are allowed but reported.

    Args:
        title: Short name of the event, e.g. "Dentist".
        date: Day of the event, "YYYY-MM-DD".
        start_time: Local start time, 24-hour "HH:MM", e.g. "14:30".
        duration_minutes: Length in minutes; the event must end by 24:00. Defaults to 60.
        location: Where it happens. Defaults to empty.

    Returns:
        {"event": {"event_id", "title", "date", "start", "end", "location"}, "conflicts": [event ids]}.
    """
    day, start = _day(date), _minutes(start_time)
    end = start + duration_minutes
    if duration_minutes <= 0 or end > 1440:
        raise ToolException("duration_minutes must be positive and the event must end by 24:00")
    clashes = _conflicts(day, start, end)
    return {"event": asdict(CALENDAR.add(title, day, start, end, location)), "conflicts": clashes}


@catalog_tool
def list_calendar_events(date: str) -> dict:
    """List the calendar events on one day, in start-time order.

    Args:
        date: The day, "YYYY-MM-DD".

    Returns:
        {"date", "events": [{"event_id", "title", "date", "start", "end", "location"}, ...]}.
    """
    day = _day(date)
    return {"date": day, "events": [asdict(e) for e in CALENDAR.on(day)]}


@catalog_tool
def find_free_time_slots(date: str, duration_minutes: int = 30, day_start: str = "09:00", day_end: str = "17:00") -> dict:
    """Find free gaps in the calendar on a day that are long enough for a meeting of a given length.

    Args:
        date: The day, "YYYY-MM-DD".
        duration_minutes: Minimum length of a useful slot, in minutes. Defaults to 30.
        day_start: Start of the working day, "HH:MM". Defaults to "09:00".
        day_end: End of the working day, "HH:MM". Defaults to "17:00".

    Returns:
        {"date", "free_slots": [{"start": "HH:MM", "end": "HH:MM"}, ...]}.
    """
    day, lo, hi = _day(date), _minutes(day_start), _minutes(day_end)
    if lo >= hi or duration_minutes <= 0:
        raise ToolException("need day_start before day_end and a positive duration_minutes")
    slots, cursor = [], lo
    for e in CALENDAR.on(day):
        s, t = _minutes(e.start), _minutes(e.end)
        if min(s, hi) - cursor >= duration_minutes:
            slots.append({"start": _fmt(cursor), "end": _fmt(min(s, hi))})
        cursor = max(cursor, t)
    if hi - cursor >= duration_minutes:
        slots.append({"start": _fmt(cursor), "end": _fmt(hi)})
    return {"date": day, "free_slots": slots}


@catalog_tool
def delete_calendar_event(event_id: str) -> dict:
    """Delete (cancel) an event from the calendar by its id.

    Args:
        event_id: The event id returned when it was added, e.g. "E2".

    Returns:
        {"deleted": {the removed event}}.
    """
    ev = CALENDAR.get(event_id)
    del CALENDAR.events[ev.event_id]
    return {"deleted": asdict(ev)}


@catalog_tool
def reschedule_calendar_event(event_id: str, new_date: str, new_start_time: str) -> dict:
    """Move an existing calendar event to another day and/or start time, keeping its length.

    Args:
        event_id: The event id, e.g. "E1".
        new_date: The new day, "YYYY-MM-DD".
        new_start_time: The new start time, 24-hour "HH:MM".

    Returns:
        {"event": {the updated event}, "conflicts": [event ids]}.
    """
    ev = CALENDAR.get(event_id)
    day, start = _day(new_date), _minutes(new_start_time)
    end = start + _minutes(ev.end) - _minutes(ev.start)
    if end > 1440:
        raise ToolException("the moved event would end after 24:00")
    ev.date, ev.start, ev.end = day, _fmt(start), _fmt(end)
    return {"event": asdict(ev), "conflicts": _conflicts(day, start, end, skip=ev.event_id)}
