"""OFFLINE FAKES of network APIs: weather, markets, travel, news, maps, messaging, search...

Nothing here touches the network and nothing here is true. Each tool has a realistic
argument schema, but its output is made up from a SHA-256 hash of its arguments
(`fake_rng`), so the same call always gives the same answer. Every docstring starts
with "(offline fake)" and every result carries `"fake": true`. Messages "sent" by
`send_email` or `send_sms` go nowhere. Links point at example.com.
"""

from __future__ import annotations

import datetime as dtm
import re
from typing import Literal

from langchain_core.tools import ToolException

from ._common import catalog_tool, fake_rng

CONDITIONS = ["sunny", "partly cloudy", "cloudy", "light rain", "heavy rain", "thunderstorms", "fog", "snow", "windy"]
AIRLINES = {"LH": "Lufthansa", "BA": "British Airways", "AF": "Air France", "UA": "United", "JL": "Japan Airlines",
            "SQ": "Singapore Airlines", "QF": "Qantas", "EK": "Emirates", "DL": "Delta", "KL": "KLM"}


def _date(text: str) -> dtm.date:
    try:
        return dtm.date.fromisoformat(text.strip()[:10])
    except ValueError:
        raise ToolException(f"invalid date {text!r}: use YYYY-MM-DD") from None


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60 % 24:02d}:{minutes % 60:02d}"


def _limit(n: int, hi: int) -> int:
    return max(1, min(n, hi))


# --- weather and environment -------------------------------------------------------


@catalog_tool
def get_current_weather(city: str, units: Literal["metric", "imperial"] = "metric") -> dict:
    """(offline fake) Current weather conditions in a city: temperature, sky, humidity and wind.

    Args:
        city: City name, optionally with country, e.g. "Paris, FR".
        units: "metric" for Celsius and km/h, "imperial" for Fahrenheit and mph. Defaults to "metric".

    Returns:
        {"city", "temperature", "temperature_unit", "condition", "humidity_percent", "wind_speed", "wind_unit", "fake": true}.
    """
    r = fake_rng("weather", city)
    c, wind = r.randint(-5, 34), r.randint(0, 45)
    imperial = units == "imperial"
    return {"city": city, "temperature": round(c * 9 / 5 + 32) if imperial else c,
            "temperature_unit": "F" if imperial else "C", "condition": r.choice(CONDITIONS),
            "humidity_percent": r.randint(20, 95), "wind_speed": round(wind / 1.609) if imperial else wind,
            "wind_unit": "mph" if imperial else "km/h", "fake": True}


@catalog_tool
def get_weather_forecast(city: str, date: str, units: Literal["metric", "imperial"] = "metric") -> dict:
    """(offline fake) Weather forecast for a city on a given day: high, low, sky and chance of rain.

    Args:
        city: City name, e.g. "Tokyo".
        date: The day to forecast, "YYYY-MM-DD".
        units: "metric" (Celsius) or "imperial" (Fahrenheit). Defaults to "metric".

    Returns:
        {"city", "date", "high", "low", "temperature_unit", "condition", "chance_of_rain_percent", "fake": true}.
    """
    day = _date(date)
    r = fake_rng("forecast", city, day.isoformat())
    lo = r.randint(-8, 24)
    hi = lo + r.randint(3, 12)
    f = (lambda c: round(c * 9 / 5 + 32)) if units == "imperial" else (lambda c: c)
    return {"city": city, "date": day.isoformat(), "high": f(hi), "low": f(lo),
            "temperature_unit": "F" if units == "imperial" else "C", "condition": r.choice(CONDITIONS),
            "chance_of_rain_percent": r.randrange(0, 101, 5), "fake": True}


@catalog_tool
def get_air_quality(city: str) -> dict:
    """(offline fake) Current air quality index (AQI) of a city with its health category and main pollutant.

    Args:
        city: City name, e.g. "Delhi".

    Returns:
        {"city", "aqi", "category", "main_pollutant", "fake": true}.
    """
    r = fake_rng("aqi", city)
    aqi = r.randint(10, 220)
    cats = [(50, "good"), (100, "moderate"), (150, "unhealthy for sensitive groups"), (200, "unhealthy"), (999, "very unhealthy")]
    return {"city": city, "aqi": aqi, "category": next(c for lim, c in cats if aqi <= lim),
            "main_pollutant": r.choice(["PM2.5", "PM10", "ozone", "NO2"]), "fake": True}


@catalog_tool
def get_sunrise_sunset(city: str, date: str) -> dict:
    """(offline fake) Sunrise and sunset times and day length for a city on a date, in local time.

    Args:
        city: City name, e.g. "Stockholm".
        date: The day, "YYYY-MM-DD".

    Returns:
        {"city", "date", "sunrise": "HH:MM", "sunset": "HH:MM", "day_length_hours", "fake": true}.
    """
    day = _date(date)
    r = fake_rng("sun", city, day.isoformat())
    rise, length = r.randint(4 * 60, 8 * 60), r.randint(8 * 60, 17 * 60)
    return {"city": city, "date": day.isoformat(), "sunrise": _hhmm(rise), "sunset": _hhmm(rise + length),
            "day_length_hours": round(length / 60, 2), "fake": True}


# --- markets -----------------------------------------------------------------------


@catalog_tool
def get_stock_quote(symbol: str) -> dict:
    """(offline fake) Latest stock market quote for a ticker symbol: price, daily change and volume.

    Args:
        symbol: Stock ticker, e.g. "AAPL" or "MSFT".

    Returns:
        {"symbol", "price", "currency": "USD", "change_percent", "volume", "fake": true}.
    """
    sym = symbol.strip().upper()
    r = fake_rng("quote", sym)
    return {"symbol": sym, "price": round(r.uniform(5, 900), 2), "currency": "USD",
            "change_percent": round(r.uniform(-6, 6), 2), "volume": r.randint(10_000, 90_000_000), "fake": True}


@catalog_tool
def get_stock_price_history(symbol: str, start_date: str, end_date: str) -> dict:
    """(offline fake) Daily closing prices of a stock between two dates (weekdays only, at most 31 days).

    Args:
        symbol: Stock ticker, e.g. "NVDA".
        start_date: First day, "YYYY-MM-DD".
        end_date: Last day, "YYYY-MM-DD"; at most 31 days after start_date.

    Returns:
        {"symbol", "currency": "USD", "closes": [{"date", "close"}, ...], "fake": true}.
    """
    sym, a, b = symbol.strip().upper(), _date(start_date), _date(end_date)
    if not 0 <= (b - a).days <= 31:
        raise ToolException("end_date must be on or after start_date and at most 31 days later")
    r = fake_rng("history", sym, a.isoformat())
    price, closes = fake_rng("quote", sym).uniform(5, 900), []
    for i in range((b - a).days + 1):
        d = a + dtm.timedelta(days=i)
        if d.weekday() < 5:
            price *= 1 + r.uniform(-0.03, 0.03)
            closes.append({"date": d.isoformat(), "close": round(price, 2)})
    return {"symbol": sym, "currency": "USD", "closes": closes, "fake": True}


@catalog_tool
def get_crypto_price(coin: str, currency: str = "USD") -> dict:
    """(offline fake) Current price of a cryptocurrency such as Bitcoin or Ether.

    Args:
        coin: Coin name or ticker, e.g. "BTC", "bitcoin", "ETH".
        currency: Fiat currency code for the price. Defaults to "USD".

    Returns:
        {"coin", "price", "currency", "change_24h_percent", "fake": true}.
    """
    r = fake_rng("crypto", coin, currency)
    return {"coin": coin, "price": round(r.uniform(0.05, 70_000), 2), "currency": currency.upper(),
            "change_24h_percent": round(r.uniform(-9, 9), 2), "fake": True}


# --- travel --------------------------------------------------------------------------


@catalog_tool
def get_flight_status(flight_number: str, date: str) -> dict:
    """(offline fake) Status of a flight on a date: on time or delayed, departure and arrival times, gate.

    Args:
        flight_number: Airline code and number, e.g. "LH400" or "BA 117".
        date: Scheduled departure date, "YYYY-MM-DD".

    Returns:
        {"flight_number", "airline", "date", "status", "scheduled_departure", "estimated_departure",
        "scheduled_arrival", "gate", "fake": true}.
    """
    fn = re.sub(r"\s+", "", flight_number.upper())
    if not re.fullmatch(r"[A-Z0-9]{2}\d{1,4}", fn):
        raise ToolException(f"invalid flight number {flight_number!r}: use airline code + number, e.g. 'LH400'")
    r = fake_rng("flight", fn, date)
    dep, dur = r.randint(5 * 60, 22 * 60), r.randint(60, 13 * 60)
    delay = r.choice([0, 0, 0, 10, 25, 45, 90])
    status = r.choice(["on time", "delayed", "boarding", "departed", "landed"]) if delay else "on time"
    return {"flight_number": fn, "airline": AIRLINES.get(fn[:2], "Unknown airline"), "date": _date(date).isoformat(),
            "status": "cancelled" if r.random() < 0.05 else status, "scheduled_departure": _hhmm(dep),
            "estimated_departure": _hhmm(dep + delay), "scheduled_arrival": _hhmm(dep + dur),
            "gate": f"{r.choice('ABCDE')}{r.randint(1, 40)}", "fake": True}


@catalog_tool
def search_flights(origin: str, destination: str, date: str, max_results: int = 3) -> dict:
    """(offline fake) Search one-way flights between two airports on a date, cheapest first.

    Args:
        origin: Departure airport IATA code or city, e.g. "FRA".
        destination: Arrival airport IATA code or city, e.g. "NRT".
        date: Travel date, "YYYY-MM-DD".
        max_results: How many offers to return, 1 to 10. Defaults to 3.

    Returns:
        {"origin", "destination", "date", "flights": [{"flight_number", "airline", "departure",
        "duration_minutes", "stops", "price", "currency"}], "fake": true}.
    """
    r = fake_rng("flights", origin, destination, date)
    flights = []
    for _ in range(_limit(max_results, 10)):
        code = r.choice(sorted(AIRLINES))
        flights.append({"flight_number": f"{code}{r.randint(10, 999)}", "airline": AIRLINES[code],
                        "departure": _hhmm(r.randint(6 * 60, 23 * 60)), "duration_minutes": r.randint(70, 900),
                        "stops": r.choice([0, 0, 1, 1, 2]), "price": round(r.uniform(80, 1400), 2), "currency": "USD"})
    flights.sort(key=lambda f: f["price"])
    return {"origin": origin, "destination": destination, "date": _date(date).isoformat(), "flights": flights, "fake": True}


@catalog_tool
def search_hotels(city: str, check_in: str, nights: int = 1, guests: int = 2, max_results: int = 3) -> dict:
    """(offline fake) Find available hotels in a city for given dates, with nightly price and rating.

    Args:
        city: City name, e.g. "Rome".
        check_in: Arrival date, "YYYY-MM-DD".
        nights: Number of nights, at least 1. Defaults to 1.
        guests: Number of guests. Defaults to 2.
        max_results: How many hotels to return, 1 to 10. Defaults to 3.

    Returns:
        {"city", "check_in", "nights", "hotels": [{"name", "stars", "rating", "price_per_night", "total_price", "currency"}], "fake": true}.
    """
    if nights < 1:
        raise ToolException("nights must be at least 1")
    r = fake_rng("hotels", city, check_in, nights, guests)
    hotels = []
    for _ in range(_limit(max_results, 10)):
        nightly = round(r.uniform(55, 480), 2)
        hotels.append({"name": f"{r.choice(['Grand', 'Park', 'Central', 'Harbour', 'Royal', 'City'])} "
                               f"{r.choice(['Hotel', 'Suites', 'Inn', 'Residence'])} {city}",
                       "stars": r.randint(2, 5), "rating": round(r.uniform(6.5, 9.7), 1),
                       "price_per_night": nightly, "total_price": round(nightly * nights, 2), "currency": "USD"})
    return {"city": city, "check_in": _date(check_in).isoformat(), "nights": nights, "hotels": hotels, "fake": True}


@catalog_tool
def get_driving_directions(origin: str, destination: str, mode: Literal["driving", "walking", "cycling", "transit"] = "driving") -> dict:
    """(offline fake) Route directions between two places with distance, travel time and main steps.

    Args:
        origin: Start address or place, e.g. "Alexanderplatz, Berlin".
        destination: End address or place, e.g. "Potsdam".
        mode: "driving", "walking", "cycling" or "transit". Defaults to "driving".

    Returns:
        {"origin", "destination", "mode", "distance_km", "duration_minutes", "steps": [str, ...], "fake": true}.
    """
    r = fake_rng("route", origin, destination)
    km = round(r.uniform(1.5, 60), 1)
    speed = {"driving": 45, "walking": 5, "cycling": 16, "transit": 28}[mode]
    roads = ["Main Street", "Ring Road", "Station Avenue", "River Drive", "Highway 9", "Market Street"]
    steps = [f"Head {r.choice(['north', 'south', 'east', 'west'])} on {r.choice(roads)}",
             f"Turn {r.choice(['left', 'right'])} onto {r.choice(roads)}",
             f"Continue {round(km * 0.6, 1)} km, then arrive at {destination}"]
    return {"origin": origin, "destination": destination, "mode": mode, "distance_km": km,
            "duration_minutes": round(km / speed * 60), "steps": steps, "fake": True}


@catalog_tool
def get_traffic_conditions(city: str) -> dict:
    """(offline fake) Current road traffic in a city: congestion level and incidents.

    Args:
        city: City name, e.g. "Los Angeles".

    Returns:
        {"city", "congestion_percent", "level", "incidents", "fake": true}.
    """
    r = fake_rng("traffic", city)
    pct = r.randint(5, 95)
    return {"city": city, "congestion_percent": pct, "level": "light" if pct < 30 else "moderate" if pct < 60 else "heavy",
            "incidents": r.randint(0, 12), "fake": True}


@catalog_tool
def track_package(tracking_number: str, carrier: Literal["ups", "fedex", "dhl", "usps", "royal_mail"] = "dhl") -> dict:
    """(offline fake) Track a parcel shipment by tracking number: current status, location and estimated delivery.

    Args:
        tracking_number: The carrier's tracking number, e.g. "1Z999AA10123456784".
        carrier: The shipping company: "ups", "fedex", "dhl", "usps" or "royal_mail". Defaults to "dhl".

    Returns:
        {"tracking_number", "carrier", "status", "last_location", "estimated_delivery", "fake": true}.
    """
    r = fake_rng("parcel", tracking_number, carrier)
    eta = dtm.date(2024, 7, 1) + dtm.timedelta(days=r.randint(0, 10))
    return {"tracking_number": tracking_number, "carrier": carrier,
            "status": r.choice(["label created", "in transit", "out for delivery", "delivered", "held at customs"]),
            "last_location": r.choice(["Leipzig hub", "Memphis hub", "Heathrow", "Singapore Changi", "local depot"]),
            "estimated_delivery": eta.isoformat(), "fake": True}


# --- places ----------------------------------------------------------------------------


@catalog_tool
def geocode_address(address: str) -> dict:
    """(offline fake) Geocode a street address or place name to latitude and longitude.

    Args:
        address: Free-form address, e.g. "10 Downing Street, London".

    Returns:
        {"address", "latitude", "longitude", "confidence", "fake": true}.
    """
    r = fake_rng("geocode", address)
    return {"address": address, "latitude": round(r.uniform(-60, 70), 5), "longitude": round(r.uniform(-180, 180), 5),
            "confidence": round(r.uniform(0.6, 1.0), 2), "fake": True}


@catalog_tool
def reverse_geocode(latitude: float, longitude: float) -> dict:
    """(offline fake) Find the nearest street address for a latitude/longitude point.

    Args:
        latitude: Latitude in decimal degrees, -90 to 90.
        longitude: Longitude in decimal degrees, -180 to 180.

    Returns:
        {"latitude", "longitude", "address", "fake": true}.
    """
    if not (-90 <= latitude <= 90 and -180 <= longitude <= 180):
        raise ToolException("latitude must be in -90..90 and longitude in -180..180")
    r = fake_rng("revgeo", round(latitude, 4), round(longitude, 4))
    street = r.choice(["Oak Street", "Hill Road", "Lake View", "Church Lane", "Mill Street"])
    return {"latitude": latitude, "longitude": longitude,
            "address": f"{r.randint(1, 250)} {street}, {r.choice(['Springfield', 'Riverton', 'Lakeside', 'Fairview'])}",
            "fake": True}


@catalog_tool
def find_restaurants(city: str, cuisine: str = "any", max_results: int = 3) -> dict:
    """(offline fake) Find restaurants in a city, optionally of one cuisine, with rating and price level.

    Args:
        city: City name, e.g. "Madrid".
        cuisine: Kind of food, e.g. "italian", "sushi", "vegan"; "any" for all. Defaults to "any".
        max_results: How many restaurants, 1 to 10. Defaults to 3.

    Returns:
        {"city", "cuisine", "restaurants": [{"name", "rating", "price_level", "address"}], "fake": true}.
    """
    r = fake_rng("restaurants", city, cuisine)
    out = [{"name": f"{r.choice(['La', 'The', 'Casa', 'Chez', 'Little'])} {r.choice(['Olive', 'Lantern', 'Garden', 'Table', 'Harbour'])}",
            "rating": round(r.uniform(3.4, 4.9), 1), "price_level": "$" * r.randint(1, 4),
            "address": f"{r.randint(1, 200)} {r.choice(['Market', 'High', 'Canal', 'Park'])} Street"}
           for _ in range(_limit(max_results, 10))]
    return {"city": city, "cuisine": cuisine, "restaurants": out, "fake": True}


@catalog_tool
def get_movie_showtimes(city: str, date: str, movie_title: str | None = None) -> dict:
    """(offline fake) Cinema showtimes in a city on a date, optionally for one film.

    Args:
        city: City name, e.g. "Toronto".
        date: The day, "YYYY-MM-DD".
        movie_title: Only this film. Defaults to all films showing.

    Returns:
        {"city", "date", "showtimes": [{"movie", "cinema", "times": ["HH:MM", ...]}], "fake": true}.
    """
    r = fake_rng("movies", city, date, movie_title)
    titles = [movie_title] if movie_title else r.sample(["The Long Orbit", "Paper Lanterns", "Night Train to Lyon",
                                                          "Quiet Harbour", "Robot Garden"], 3)
    shows = [{"movie": t, "cinema": f"{r.choice(['Odeon', 'Cineplex', 'Rex', 'Lumiere'])} {city}",
              "times": sorted(_hhmm(r.randrange(11 * 60, 23 * 60, 15)) for _ in range(3))} for t in titles]
    return {"city": city, "date": _date(date).isoformat(), "showtimes": shows, "fake": True}


@catalog_tool
def get_sports_scores(league: str, date: str) -> dict:
    """(offline fake) Final scores of games in a sports league on a date.

    Args:
        league: League name, e.g. "NBA", "Premier League", "Bundesliga".
        date: The day, "YYYY-MM-DD".

    Returns:
        {"league", "date", "games": [{"home", "away", "home_score", "away_score"}], "fake": true}.
    """
    r = fake_rng("scores", league, date)
    teams = r.sample(["Lions", "Eagles", "Sharks", "Rovers", "United", "Rangers", "Comets", "Wolves"], 6)
    games = [{"home": teams[i], "away": teams[i + 1], "home_score": r.randint(0, 5), "away_score": r.randint(0, 5)}
             for i in range(0, 6, 2)]
    return {"league": league, "date": _date(date).isoformat(), "games": games, "fake": True}


@catalog_tool
def get_public_holidays(country_code: str, year: int) -> dict:
    """(offline fake) Public holidays of a country in a year (made-up dates apart from New Year's Day).

    Args:
        country_code: ISO 3166 two-letter country code, e.g. "DE", "US", "JP".
        year: The year, e.g. 2024.

    Returns:
        {"country_code", "year", "holidays": [{"date", "name"}], "fake": true}.
    """
    r = fake_rng("holidays", country_code, year)
    days = sorted({dtm.date(year, 1, 1) + dtm.timedelta(days=r.randint(1, 364)) for _ in range(6)})
    names = ["Spring Festival", "Labour Day", "Founders' Day", "Harvest Day", "Remembrance Day", "Unity Day"]
    return {"country_code": country_code.upper(), "year": year,
            "holidays": [{"date": f"{year}-01-01", "name": "New Year's Day"}]
            + [{"date": d.isoformat(), "name": n} for d, n in zip(days, names)], "fake": True}


# --- language and knowledge ---------------------------------------------------------------


@catalog_tool
def translate_text(text: str, target_language: str, source_language: str = "auto") -> dict:
    """(offline fake) Translate text into another language; the fake only tags the text with the target language.

    Args:
        text: The text to translate.
        target_language: ISO 639-1 code of the language wanted, e.g. "fr", "de", "ja".
        source_language: ISO 639-1 code of the text's language, or "auto" to detect. Defaults to "auto".

    Returns:
        {"translated_text", "source_language", "target_language", "fake": true}.
    """
    src = detect_language(text)["language"] if source_language == "auto" else source_language
    return {"translated_text": f"[{target_language}] {text}", "source_language": src,
            "target_language": target_language, "fake": True}


_STOPWORDS = {
    "en": {"the", "and", "is", "of", "to", "you", "it", "in", "what", "where"},
    "fr": {"le", "la", "les", "et", "est", "des", "une", "je", "vous", "bonjour"},
    "de": {"der", "die", "das", "und", "ist", "nicht", "ich", "ein", "wo", "guten"},
    "es": {"el", "los", "las", "y", "es", "una", "que", "por", "hola", "donde"},
    "it": {"il", "gli", "e", "di", "che", "una", "sono", "ciao", "dove", "non"},
    "nl": {"de", "het", "een", "en", "is", "niet", "ik", "waar", "van", "goedemorgen"},
}


@catalog_tool
def detect_language(text: str) -> dict:
    """(offline fake) Guess the language of a text (a tiny stop-word heuristic standing in for a detection API).

    Args:
        text: The text to identify, a sentence or more works best.

    Returns:
        {"language": ISO 639-1 code, "confidence": 0..1, "fake": true}.
    """
    words = re.findall(r"[^\W\d_]+", text.lower())
    scores = {lang: sum(w in sw for w in words) for lang, sw in _STOPWORDS.items()}
    best = max(scores, key=lambda k: (scores[k], k == "en"))
    conf = scores[best] / max(len(words), 1)
    return {"language": best if scores[best] else "en", "confidence": round(min(1.0, 0.3 + conf), 2), "fake": True}


@catalog_tool
def web_search(query: str, max_results: int = 5) -> dict:
    """(offline fake) Search the web and return result titles, links and snippets.

    Args:
        query: The search query, e.g. "best hiking trails near Zurich".
        max_results: How many results, 1 to 10. Defaults to 5.

    Returns:
        {"query", "results": [{"title", "url", "snippet"}], "fake": true}.
    """
    r = fake_rng("search", query)
    slug = "-".join(re.findall(r"[a-z0-9]+", query.lower()))[:40] or "result"
    kinds = ["Guide", "Overview", "FAQ", "Review", "News", "Forum thread"]
    out = [{"title": f"{query.strip().title()} - {r.choice(kinds)}", "url": f"https://example.com/{slug}/{r.randint(100, 999)}",
            "snippet": f"Everything about {query.strip()}: {r.choice(['tips', 'facts', 'answers', 'latest updates'])} and more."}
           for _ in range(_limit(max_results, 10))]
    return {"query": query, "results": out, "fake": True}


@catalog_tool
def get_news_headlines(topic: str = "general", country: str = "us", limit: int = 5) -> dict:
    """(offline fake) Latest news headlines on a topic for a country.

    Args:
        topic: Subject such as "technology", "business", "sports", "science" or "general". Defaults to "general".
        country: ISO 3166 two-letter country code for the news edition, e.g. "gb". Defaults to "us".
        limit: How many headlines, 1 to 10. Defaults to 5.

    Returns:
        {"topic", "country", "headlines": [{"title", "source"}], "fake": true}.
    """
    r = fake_rng("news", topic, country)
    verbs = ["rises", "falls", "surprises experts", "faces new questions", "sets a record", "announces changes"]
    subjects = [f"{topic.title()} sector", "Local council", "New study", "Market index", "Tech startup", "National team"]
    heads = [{"title": f"{r.choice(subjects)} {r.choice(verbs)}", "source": r.choice(["Daily Example", "Example Times", "Newswire"])}
             for _ in range(_limit(limit, 10))]
    return {"topic": topic, "country": country.lower(), "headlines": heads, "fake": True}


@catalog_tool
def get_wikipedia_summary(topic: str, sentences: int = 2) -> dict:
    """(offline fake) Short encyclopedia summary of a topic, person or place.

    Args:
        topic: What to look up, e.g. "Eiffel Tower".
        sentences: How many sentences of summary, 1 to 5. Defaults to 2.

    Returns:
        {"topic", "summary", "url", "fake": true}.
    """
    r = fake_rng("wiki", topic)
    pool = [f"{topic} is a subject of wide interest.", f"It was first documented in {r.randint(1500, 2015)}.",
            f"{topic} is often discussed in {r.choice(['history', 'science', 'culture', 'travel'])} writing.",
            "Several notable works describe it in detail.", "It remains a popular topic today."]
    return {"topic": topic, "summary": " ".join(pool[: _limit(sentences, 5)]),
            "url": f"https://example.org/wiki/{topic.strip().replace(' ', '_')}", "fake": True}


# --- messaging and web services -----------------------------------------------------------


def _message_id(prefix: str, *parts: object) -> str:
    return f"{prefix}-{fake_rng(prefix, *parts).getrandbits(40):010x}"


@catalog_tool
def send_email(to: str, subject: str, body: str, cc: list[str] | None = None) -> dict:
    """(offline fake) Send an email; the fake sends nothing and only returns a message id.

    Args:
        to: Recipient email address, e.g. "aiko.tanaka@example.com".
        subject: The subject line.
        body: The plain-text message body.
        cc: Extra recipients to copy. Defaults to none.

    Returns:
        {"status": "queued", "message_id", "to", "fake": true}.
    """
    if "@" not in to:
        raise ToolException(f"invalid email address {to!r}")
    return {"status": "queued", "message_id": _message_id("msg", to, subject, body, cc), "to": to, "fake": True}


@catalog_tool
def send_sms(phone_number: str, message: str) -> dict:
    """(offline fake) Send a text message (SMS) to a phone number; nothing is actually sent.

    Args:
        phone_number: Number in international format, e.g. "+1-555-0100".
        message: The text, at most 480 characters.

    Returns:
        {"status": "sent", "sms_id", "segments", "fake": true}.
    """
    if len(message) > 480:
        raise ToolException("message is longer than 480 characters")
    return {"status": "sent", "sms_id": _message_id("sms", phone_number, message),
            "segments": max(1, -(-len(message) // 160)), "fake": True}


@catalog_tool
def post_chat_message(channel: str, text: str) -> dict:
    """(offline fake) Post a message to a team chat channel (Slack-style); nothing is posted.

    Args:
        channel: Channel name, e.g. "#support".
        text: The message text.

    Returns:
        {"ok": true, "channel", "timestamp", "fake": true}.
    """
    ts = f"{1719500000 + fake_rng('chat', channel, text).randint(0, 10**6)}.000100"
    return {"ok": True, "channel": channel, "timestamp": ts, "fake": True}


@catalog_tool
def create_support_ticket(subject: str, description: str, priority: Literal["low", "normal", "high", "urgent"] = "normal") -> dict:
    """(offline fake) Open a customer support ticket in the helpdesk system.

    Args:
        subject: One-line summary of the problem.
        description: Details of the problem, e.g. the order id and what went wrong.
        priority: "low", "normal", "high" or "urgent". Defaults to "normal".

    Returns:
        {"ticket_id", "status": "open", "priority", "fake": true}.
    """
    return {"ticket_id": f"T-{fake_rng('ticket', subject, description).randint(10000, 99999)}",
            "status": "open", "priority": priority, "fake": True}


@catalog_tool
def shorten_url(url: str) -> dict:
    """(offline fake) Make a short link for a long URL.

    Args:
        url: The full URL, starting with http:// or https://.

    Returns:
        {"url", "short_url", "fake": true}.
    """
    if not url.startswith(("http://", "https://")):
        raise ToolException(f"url must start with http:// or https://, got {url!r}")
    code = "".join(fake_rng("short", url).choice("abcdefghjkmnpqrstuvwxyz23456789") for _ in range(7))
    return {"url": url, "short_url": f"https://sho.example.com/{code}", "fake": True}


@catalog_tool
def check_website_status(url: str) -> dict:
    """(offline fake) Check whether a website is up: HTTP status code and response time.

    Args:
        url: The address to check, e.g. "https://example.com".

    Returns:
        {"url", "up": bool, "status_code", "response_ms", "fake": true}.
    """
    r = fake_rng("uptime", url)
    code = r.choice([200, 200, 200, 200, 301, 404, 500, 503])
    return {"url": url, "up": code < 500, "status_code": code, "response_ms": r.randint(40, 1800), "fake": True}
