"""City facts and distances: real offline implementations over the `cities` table of shop.db.

Only the 24 cities in that table are known; `geocode_address` in fake_apis.py is the
(offline fake) stand-in for a worldwide geocoder.
"""

from __future__ import annotations

import datetime as dtm
import math

from langchain_core.tools import ToolException

from ._common import catalog_tool, zone
from .database import query

EARTH_RADIUS_KM = 6371.0088


def _city(name: str) -> dict:
    rows = query("SELECT * FROM cities WHERE lower(city) = lower(?)", (name.strip(),))
    if not rows:
        known = ", ".join(r["city"] for r in query("SELECT city FROM cities ORDER BY city"))
        raise ToolException(f"unknown city {name!r}: known cities are {known}")
    return rows[0]


def _haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(math.sqrt(a))


@catalog_tool
def get_city_timezone(city: str) -> dict:
    """IANA time zone of a major city, e.g. Tokyo -> Asia/Tokyo.

    Args:
        city: City name in English, e.g. "Tokyo", "New York", "Sao Paulo".

    Returns:
        {"city", "country", "timezone"}.
    """
    c = _city(city)
    return {"city": c["city"], "country": c["country"], "timezone": c["timezone"]}


@catalog_tool
def get_city_info(city: str) -> dict:
    """Country, coordinates and time zone of a major city from the offline city table.

    Args:
        city: City name in English, e.g. "Berlin".

    Returns:
        {"city", "country", "timezone", "latitude", "longitude"}.
    """
    return _city(city)


@catalog_tool
def distance_between_cities(city_a: str, city_b: str) -> dict:
    """Great-circle (straight-line, as the crow flies) distance between two major cities.

    Args:
        city_a: First city name, e.g. "London".
        city_b: Second city name, e.g. "Tokyo".

    Returns:
        {"city_a", "city_b", "km", "miles"}.
    """
    a, b = _city(city_a), _city(city_b)
    km = _haversine_km(a["latitude"], a["longitude"], b["latitude"], b["longitude"])
    return {"city_a": a["city"], "city_b": b["city"], "km": round(km, 1), "miles": round(km / 1.609344, 1)}


@catalog_tool
def haversine_distance(lat1: float, lon1: float, lat2: float, lon2: float) -> dict:
    """Great-circle distance between two points given by latitude and longitude.

    Args:
        lat1: Latitude of the first point in decimal degrees (-90 to 90, north positive).
        lon1: Longitude of the first point in decimal degrees (-180 to 180, east positive).
        lat2: Latitude of the second point in decimal degrees.
        lon2: Longitude of the second point in decimal degrees.

    Returns:
        {"km", "miles"}.
    """
    for lat in (lat1, lat2):
        if not -90 <= lat <= 90:
            raise ToolException(f"latitude {lat} is out of range -90..90")
    km = _haversine_km(lat1, lon1, lat2, lon2)
    return {"km": round(km, 3), "miles": round(km / 1.609344, 3)}


@catalog_tool
def local_time_difference_between_cities(city_a: str, city_b: str, date: str) -> dict:
    """How many hours ahead the local clock in one city is compared to another on a given date.

    Args:
        city_a: First city name, e.g. "Sydney".
        city_b: Second city name, e.g. "London".
        date: The date, "YYYY-MM-DD" (daylight saving changes the difference).

    Returns:
        {"city_a", "city_b", "date", "hours_a_ahead_of_b"}.
    """
    try:
        noon = dtm.datetime.fromisoformat(date[:10]).replace(hour=12, tzinfo=dtm.timezone.utc)
    except ValueError:
        raise ToolException(f"invalid date {date!r}: use YYYY-MM-DD") from None
    a, b = _city(city_a), _city(city_b)
    off_a = noon.astimezone(zone(a["timezone"])).utcoffset()
    off_b = noon.astimezone(zone(b["timezone"])).utcoffset()
    return {"city_a": a["city"], "city_b": b["city"], "date": date[:10],
            "hours_a_ahead_of_b": (off_a - off_b).total_seconds() / 3600}
