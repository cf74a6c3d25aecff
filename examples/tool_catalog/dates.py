"""Date, time and time-zone tools: real offline implementations on `zoneinfo`.

Every tool takes explicit dates and datetimes, never "now", so results are
deterministic. Dates are ISO 8601 ("2024-03-14"); datetimes are ISO 8601 with an
optional offset ("2024-03-14T18:45:00Z", "2024-03-14T18:45:00+02:00"). Time zones
are IANA names ("Asia/Tokyo"); they need the system tz database or the `tzdata`
package, and a missing database is reported as such.
"""

from __future__ import annotations

import calendar
import datetime as dtm
import re
from typing import Literal

from langchain_core.tools import ToolException

from ._common import catalog_tool, zone

WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]


def _date(text: str) -> dtm.date:
    """An ISO date; an ISO datetime is accepted and its date part used."""
    try:
        return dtm.date.fromisoformat(text.strip()[:10])
    except ValueError:
        raise ToolException(f"invalid date {text!r}: use ISO format YYYY-MM-DD, e.g. '2024-03-14'") from None


def _datetime(text: str) -> dtm.datetime:
    """An ISO datetime, naive or aware; a trailing Z means UTC; a bare date means midnight."""
    s = text.strip()
    if s.endswith(("Z", "z")):
        s = s[:-1] + "+00:00"
    try:
        return dtm.datetime.fromisoformat(s)
    except ValueError:
        raise ToolException(
            f"invalid datetime {text!r}: use ISO format, e.g. '2024-03-14T18:45:00Z' or '2024-03-14 09:30'"
        ) from None


def _local(dt: dtm.datetime) -> dict:
    """The compact description of an aware datetime returned by the tools."""
    return {"datetime": dt.isoformat(), "date": dt.date().isoformat(), "time": dt.strftime("%H:%M"),
            "weekday": WEEKDAYS[dt.weekday()], "utc_offset": dt.strftime("%z")[:3] + ":" + dt.strftime("%z")[3:]}


@catalog_tool
def convert_timezone(datetime: str, to_timezone: str, from_timezone: str = "UTC") -> dict:
    """Convert a date and time from one time zone to another.

    Args:
        datetime: The moment, ISO 8601, e.g. "2024-03-14T18:45:00". If it has an offset or Z, that wins over from_timezone.
        to_timezone: IANA time zone to express it in, e.g. "Asia/Tokyo".
        from_timezone: IANA time zone of a datetime without offset. Defaults to "UTC".

    Returns:
        {"datetime", "date", "time", "weekday", "utc_offset", "timezone"} in the target zone.

    Example:
        convert_timezone("2024-03-14T18:45:00Z", "Asia/Tokyo") -> {"datetime": "2024-03-15T03:45:00+09:00", ...}
    """
    dt = _datetime(datetime)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=zone(from_timezone))
    return {**_local(dt.astimezone(zone(to_timezone))), "timezone": to_timezone}


@catalog_tool
def add_days_in_timezone(date: str, days: int, timezone: str) -> dict:
    """Add a number of calendar days to a date or datetime and give the resulting local date in a time zone.

    Use it for delivery or due dates: an order placed at "2024-03-14T18:45:00Z" with 5 shipping days, delivered
    in Tokyo. An aware datetime (with Z or an offset) is first converted to the zone, so the local date may
    differ from the UTC date; a plain date or naive datetime is taken as already local.

    Args:
        date: Start date "YYYY-MM-DD" or datetime "YYYY-MM-DDTHH:MM:SSZ".
        days: Number of calendar days to add; negative goes back.
        timezone: IANA time zone of the place, e.g. "Asia/Tokyo".

    Returns:
        {"start_local", "days", "date", "weekday", "datetime", "timezone"}; `date` is the local result date.

    Example:
        add_days_in_timezone("2024-03-14T18:45:00Z", 5, "Asia/Tokyo") -> {..., "date": "2024-03-20", "weekday": "Wednesday"}
    """
    tz = zone(timezone)
    dt = _datetime(date)
    dt = dt.astimezone(tz) if dt.tzinfo else dt.replace(tzinfo=tz)
    # calendar days: same wall-clock time, then re-resolve the offset (DST may change it)
    end = dtm.datetime.combine(dt.date() + dtm.timedelta(days=days), dt.time(), tzinfo=tz)
    return {"start_local": dt.isoformat(), "days": days, "date": end.date().isoformat(),
            "weekday": WEEKDAYS[end.weekday()], "datetime": end.isoformat(), "timezone": timezone}


@catalog_tool
def add_time_to_datetime(datetime: str, hours: float = 0, minutes: float = 0, timezone: str = "UTC") -> dict:
    """Add an elapsed duration (hours and minutes) to a moment and show the result in a time zone.

    The duration is real elapsed time, so it is correct across daylight-saving changes (e.g. a flight length).

    Args:
        datetime: Start moment, ISO 8601; without offset it is taken in `timezone`.
        hours: Hours to add; may be fractional or negative.
        minutes: Minutes to add; may be negative.
        timezone: IANA time zone for a naive start and for the result. Defaults to "UTC".

    Returns:
        {"datetime", "date", "time", "weekday", "utc_offset", "timezone"}.
    """
    tz = zone(timezone)
    dt = _datetime(datetime)
    dt = dt if dt.tzinfo else dt.replace(tzinfo=tz)
    end = (dt.astimezone(dtm.timezone.utc) + dtm.timedelta(hours=hours, minutes=minutes)).astimezone(tz)
    return {**_local(end), "timezone": timezone}


def _is_business_day(d: dtm.date, holidays: set[dtm.date]) -> bool:
    return d.weekday() < 5 and d not in holidays


@catalog_tool
def add_business_days(date: str, days: int, holidays: list[str] | None = None) -> dict:
    """Add working days to a date, skipping Saturdays, Sundays and optional holidays.

    Args:
        date: Start date, "YYYY-MM-DD".
        days: Number of business days to add (>= 0).
        holidays: Extra non-working dates "YYYY-MM-DD" to skip. Defaults to none.

    Returns:
        {"start", "business_days", "date", "weekday"}.

    Example:
        add_business_days("2024-03-15", 3) -> {..., "date": "2024-03-20", "weekday": "Wednesday"}
    """
    if days < 0:
        raise ToolException("days must be >= 0")
    off = {_date(h) for h in holidays or []}
    d, left = _date(date), days
    while left:
        d += dtm.timedelta(days=1)
        left -= _is_business_day(d, off)
    return {"start": date[:10], "business_days": days, "date": d.isoformat(), "weekday": WEEKDAYS[d.weekday()]}


@catalog_tool
def business_days_between(start_date: str, end_date: str, holidays: list[str] | None = None) -> dict:
    """Count working days (Monday to Friday, minus holidays) after start_date up to and including end_date.

    Args:
        start_date: First date, "YYYY-MM-DD" (not counted).
        end_date: Last date, "YYYY-MM-DD" (counted); must not be before start_date.
        holidays: Extra non-working dates "YYYY-MM-DD". Defaults to none.

    Returns:
        {"start_date", "end_date", "business_days"}.
    """
    a, b = _date(start_date), _date(end_date)
    if b < a:
        raise ToolException(f"end_date {end_date} is before start_date {start_date}")
    off = {_date(h) for h in holidays or []}
    n = sum(_is_business_day(a + dtm.timedelta(days=i), off) for i in range(1, (b - a).days + 1))
    return {"start_date": a.isoformat(), "end_date": b.isoformat(), "business_days": n}


@catalog_tool
def days_between_dates(start_date: str, end_date: str) -> dict:
    """Number of calendar days from one date to another (negative if end_date is earlier).

    Args:
        start_date: First date, "YYYY-MM-DD".
        end_date: Second date, "YYYY-MM-DD".

    Returns:
        {"days": int, "weeks": float}.

    Example:
        days_between_dates("2024-01-01", "2024-03-01") -> {"days": 60, "weeks": 8.57}
    """
    n = (_date(end_date) - _date(start_date)).days
    return {"days": n, "weeks": round(n / 7, 2)}


@catalog_tool
def weekday_of_date(date: str) -> dict:
    """Day of the week of a date.

    Args:
        date: The date, "YYYY-MM-DD".

    Returns:
        {"date", "weekday": "Monday".."Sunday", "is_weekend": bool}.
    """
    d = _date(date)
    return {"date": d.isoformat(), "weekday": WEEKDAYS[d.weekday()], "is_weekend": d.weekday() >= 5}


@catalog_tool
def iso_week_number(date: str) -> dict:
    """ISO 8601 calendar week number of a date (weeks start on Monday).

    Args:
        date: The date, "YYYY-MM-DD".

    Returns:
        {"date", "iso_year", "week", "weekday_number": 1 (Monday) .. 7 (Sunday)}.
    """
    d = _date(date)
    y, w, wd = d.isocalendar()
    return {"date": d.isoformat(), "iso_year": y, "week": w, "weekday_number": wd}


_ORDINAL = re.compile(r"(\d+)(st|nd|rd|th)\b", re.IGNORECASE)
_WEEKDAY_PREFIX = re.compile(r"^(mon|tue|wed|thu|fri|sat|sun)[a-z]*,?\s+", re.IGNORECASE)


@catalog_tool
def parse_date(text: str, day_first: bool = False) -> dict:
    """Turn a date written by a person into an ISO date, e.g. "March 5th, 2024" or "05/03/2024".

    Args:
        text: The date text: "2024-03-05", "March 5, 2024", "5 March 2024", "Tue, Mar 5 2024", "03/05/2024", "05.03.2024".
        day_first: For numeric dates with slashes, True reads 05/03/2024 as 5 March (European), False as May 3 (US).

    Returns:
        {"text", "date": "YYYY-MM-DD", "weekday"}.
    """
    s = _WEEKDAY_PREFIX.sub("", _ORDINAL.sub(r"\1", text.strip()))
    s = re.sub(r"\s+", " ", s.replace(",", ", ")).replace(" ,", ",").replace(",,", ",")
    slash = "%d/%m/%Y" if day_first else "%m/%d/%Y"
    formats = ["%Y-%m-%d", "%Y/%m/%d", "%Y%m%d", "%d.%m.%Y", slash, "%B %d, %Y", "%b %d, %Y",
               "%B %d %Y", "%b %d %Y", "%d %B %Y", "%d %b %Y", "%d %B, %Y", "%d %b, %Y"]
    for fmt in formats:
        try:
            d = dtm.datetime.strptime(s, fmt).date()
        except ValueError:
            continue
        return {"text": text, "date": d.isoformat(), "weekday": WEEKDAYS[d.weekday()]}
    raise ToolException(f"cannot read {text!r} as a date: try a form like '2024-03-05' or 'March 5, 2024'")


@catalog_tool
def format_date(date: str, style: Literal["iso", "us", "european", "long", "short"] = "long") -> dict:
    """Write an ISO date in another style for display.

    Args:
        date: The date, "YYYY-MM-DD".
        style: "iso" 2024-03-05, "us" 03/05/2024, "european" 05.03.2024, "long" Tuesday, March 5, 2024, "short" 5 Mar 2024.

    Returns:
        {"date", "formatted"}.
    """
    d = _date(date)
    out = {
        "iso": d.isoformat(),
        "us": d.strftime("%m/%d/%Y"),
        "european": d.strftime("%d.%m.%Y"),
        "long": f"{WEEKDAYS[d.weekday()]}, {calendar.month_name[d.month]} {d.day}, {d.year}",
        "short": f"{d.day} {calendar.month_abbr[d.month]} {d.year}",
    }
    if style not in out:
        raise ToolException(f"unknown style {style!r}: use one of {', '.join(out)}")
    return {"date": d.isoformat(), "formatted": out[style]}


@catalog_tool
def timezone_utc_offset(timezone: str, date: str) -> dict:
    """UTC offset, abbreviation and daylight-saving status of a time zone on a given date.

    Args:
        timezone: IANA time zone, e.g. "America/New_York".
        date: The date or datetime to check, ISO 8601 (offsets change with daylight saving), e.g. "2024-07-01".

    Returns:
        {"timezone", "date", "utc_offset": "+HH:MM", "abbreviation", "is_dst"}.
    """
    tz = zone(timezone)
    dt = _datetime(date)
    dt = dt.astimezone(tz) if dt.tzinfo else dt.replace(tzinfo=tz)
    dst = dt.dst()
    return {"timezone": timezone, "date": dt.date().isoformat(), "utc_offset": _local(dt)["utc_offset"],
            "abbreviation": dt.tzname(), "is_dst": bool(dst)}


@catalog_tool
def time_difference_between_timezones(timezone_a: str, timezone_b: str, date: str) -> dict:
    """How many hours one time zone is ahead of another on a given date.

    Args:
        timezone_a: IANA time zone, e.g. "Europe/London".
        timezone_b: IANA time zone, e.g. "America/Los_Angeles".
        date: The date to compare on, "YYYY-MM-DD" (daylight saving changes the answer).

    Returns:
        {"timezone_a", "timezone_b", "date", "hours_a_ahead_of_b": float}.
    """
    moment = dtm.datetime.combine(_date(date), dtm.datetime.min.time().replace(hour=12), tzinfo=dtm.timezone.utc)
    a = moment.astimezone(zone(timezone_a)).utcoffset()
    b = moment.astimezone(zone(timezone_b)).utcoffset()
    return {"timezone_a": timezone_a, "timezone_b": timezone_b, "date": date[:10],
            "hours_a_ahead_of_b": (a - b).total_seconds() / 3600}


@catalog_tool
def unix_timestamp_to_datetime(timestamp: float, timezone: str = "UTC") -> dict:
    """Convert a Unix timestamp (seconds since 1970-01-01 UTC) to a readable date and time.

    Args:
        timestamp: Seconds since the Unix epoch; milliseconds must be divided by 1000 first.
        timezone: IANA time zone to show the result in. Defaults to "UTC".

    Returns:
        {"datetime", "date", "time", "weekday", "utc_offset", "timezone"}.
    """
    try:
        dt = dtm.datetime.fromtimestamp(timestamp, tz=zone(timezone))
    except (OverflowError, OSError, ValueError):
        raise ToolException(f"timestamp {timestamp} is out of range") from None
    return {**_local(dt), "timezone": timezone}


@catalog_tool
def is_leap_year(year: int) -> dict:
    """Whether a year is a leap year in the Gregorian calendar.

    Args:
        year: The year, e.g. 2024.

    Returns:
        {"year", "is_leap_year": bool, "days_in_year": 365 or 366}.
    """
    leap = calendar.isleap(year)
    return {"year": year, "is_leap_year": leap, "days_in_year": 366 if leap else 365}


@catalog_tool
def days_in_month(year: int, month: int) -> dict:
    """Number of days in a month, with the weekday of its first day.

    Args:
        year: The year, e.g. 2024.
        month: The month number, 1 (January) to 12 (December).

    Returns:
        {"year", "month", "month_name", "days", "first_weekday"}.
    """
    if not 1 <= month <= 12:
        raise ToolException(f"month={month} is out of range: use 1 to 12")
    first, n = calendar.monthrange(year, month)
    return {"year": year, "month": month, "month_name": calendar.month_name[month], "days": n,
            "first_weekday": WEEKDAYS[first]}


@catalog_tool
def age_on_date(birth_date: str, on_date: str) -> dict:
    """Age of a person (or anything) on a given date, in whole years, months and days.

    Args:
        birth_date: Date of birth, "YYYY-MM-DD".
        on_date: Date on which to measure the age, "YYYY-MM-DD".

    Returns:
        {"years", "months", "days", "total_days"}.
    """
    b, d = _date(birth_date), _date(on_date)
    if d < b:
        raise ToolException(f"on_date {on_date} is before birth_date {birth_date}")
    months = (d.year - b.year) * 12 + d.month - b.month - (d.day < b.day)
    anchor_y, anchor_m = b.year + (b.month - 1 + months) // 12, (b.month - 1 + months) % 12 + 1
    anchor = dtm.date(anchor_y, anchor_m, min(b.day, calendar.monthrange(anchor_y, anchor_m)[1]))
    return {"years": months // 12, "months": months % 12, "days": (d - anchor).days, "total_days": (d - b).days}


@catalog_tool
def next_weekday_after(date: str, weekday: Literal["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]) -> dict:
    """The first given weekday strictly after a date, e.g. the next Friday after 2024-03-14.

    Args:
        date: The reference date, "YYYY-MM-DD".
        weekday: The day of the week wanted, English name such as "Friday".

    Returns:
        {"after", "weekday", "date", "days_ahead"}.
    """
    names = [w.lower() for w in WEEKDAYS]
    if weekday.lower() not in names:
        raise ToolException(f"unknown weekday {weekday!r}: use one of {', '.join(WEEKDAYS)}")
    d = _date(date)
    ahead = (names.index(weekday.lower()) - d.weekday() - 1) % 7 + 1
    return {"after": d.isoformat(), "weekday": WEEKDAYS[names.index(weekday.lower())],
            "date": (d + dtm.timedelta(days=ahead)).isoformat(), "days_ahead": ahead}
