"""The offline tool catalog in examples/tool_catalog: size, documentation, answers, determinism.

Fast and offline: sockets are blocked while tools run, and nothing needs a model.
"""

from __future__ import annotations

import json
import socket
import sqlite3
import sys
from pathlib import Path

import pytest
from langchain_core.tools import ToolException

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))

import tool_catalog  # noqa: E402
from tool_catalog import _common, calendar_tools, currency, database, dates, inventory, make_shop_db, math_tools, text, units  # noqa: E402  # noqa: E402


@pytest.fixture(scope="module")
def catalog() -> list:
    return tool_catalog.build_catalog()  # ~0.5 s: one pydantic schema per tool


@pytest.fixture(scope="module")
def tools(catalog) -> dict:
    return {t.name: t for t in catalog}


@pytest.fixture(autouse=True)
def offline_and_fresh(monkeypatch):
    """No tool may open a socket; calendar and inventory start empty for every test."""

    def refuse(*args, **kwargs):
        raise AssertionError("a catalog tool tried to use the network")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    tool_catalog.reset_state()
    yield
    tool_catalog.reset_state()


def call(tools: dict, name: str, **kwargs):
    return tools[name].invoke(kwargs)


# --- the catalog as a whole ---------------------------------------------------------------


def test_catalog_has_at_least_110_uniquely_named_tools(catalog):
    names = [t.name for t in catalog]
    assert len(catalog) >= 110
    assert len(set(names)) == len(names)


def test_build_catalog_gives_fresh_objects_in_a_fixed_order(catalog):
    a, b = catalog, tool_catalog.build_catalog()
    assert [t.name for t in a] == [t.name for t in b]
    assert all(x is not y for x, y in zip(a, b))


def test_every_tool_and_parameter_is_described(tools):
    for name, t in tools.items():
        assert len(t.description) > 20, name
        assert "Returns:" in t.description, name
        assert "Args:" not in t.description, name  # argument text lives in the schema
        for arg, spec in t.args.items():
            assert spec.get("description"), f"{name}.{arg} has no description"


def test_fakes_are_labelled_and_only_fakes(tools):
    fake_names = {f.__name__ for f in tool_catalog.tool_functions(tool_catalog.fake_apis)}
    assert len(fake_names) >= 20
    for name, t in tools.items():
        assert t.description.startswith("(offline fake)") == (name in fake_names), name


def test_every_domain_has_tools():
    counts = {m.__name__.rsplit(".", 1)[1]: len(tool_catalog.tool_functions(m)) for m in tool_catalog.MODULES}
    assert all(n >= 5 for n in counts.values()), counts


# --- labelled requests ---------------------------------------------------------------------


def test_requests_are_well_formed_and_name_real_tools(tools):
    requests = tool_catalog.load_requests()
    assert len(requests) >= 60
    for r in requests:
        assert set(r) == {"request", "tools"}
        assert r["request"].strip()
        assert 1 <= len(r["tools"]) <= 3
        assert len(set(r["tools"])) == len(r["tools"])
        for name in r["tools"]:
            assert name in tools, f"{name!r} in {r['request']!r} is not in the catalog"


def test_requests_cover_every_domain():
    used = {n for r in tool_catalog.load_requests() for n in r["tools"]}
    for m in tool_catalog.MODULES:
        names = {f.__name__ for f in tool_catalog.tool_functions(m)}
        assert names & used, f"no request uses a tool from {m.__name__}"


# --- real tools give right answers --------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "kwargs", "expected"),
    [
        ("add_numbers", {"a": 0.1, "b": 0.2}, {"result": 0.3}),
        ("subtract_numbers", {"a": 5000, "b": 1299}, {"result": 3701}),
        ("multiply_numbers", {"a": 12.5, "b": 48}, {"result": 600}),
        ("divide_numbers", {"dividend": 10, "divisor": 4}, {"result": 2.5}),
        ("modulo", {"dividend": 250, "divisor": 12}, {"quotient": 20, "remainder": 10}),
        ("power", {"base": 2, "exponent": 10}, {"result": 1024}),
        ("square_root", {"x": 1764}, {"result": 42}),
        ("logarithm", {"x": 4096, "base": 2}, {"result": 12}),
        ("percentage_of", {"percent": 15, "value": 80}, {"result": 12}),
        ("what_percent", {"part": 42, "whole": 50}, {"percent": 84}),
        ("percent_change", {"old_value": 80, "new_value": 100}, {"percent_change": 25}),
        ("round_number", {"value": 3.14159, "decimals": 2}, {"result": 3.14}),
        ("mean_of_numbers", {"numbers": [2, 4, 9]}, {"mean": 5}),
        ("median_of_numbers", {"numbers": [5, 1, 9, 3]}, {"median": 4}),
        ("standard_deviation", {"numbers": [2, 4, 4, 4, 5, 5, 7, 9], "sample": False}, {"stdev": 2, "variance": 4}),
        ("factorial", {"n": 12}, {"result": 479001600}),
        ("greatest_common_divisor", {"a": 84, "b": 126}, {"gcd": 42}),
        ("least_common_multiple", {"a": 12, "b": 18}, {"lcm": 36}),
        ("compound_interest", {"principal": 1000, "annual_rate_percent": 5, "years": 10, "compounds_per_year": 1},
         {"future_value": 1628.89, "interest_earned": 628.89}),
        ("evaluate_expression", {"expression": "(3 + 4) * 2 / 7"}, {"expression": "(3 + 4) * 2 / 7", "result": 2}),
    ],
)
def test_math(tools, name, kwargs, expected):
    assert call(tools, name, **kwargs) == expected


def test_loan_payment_and_primes(tools):
    assert call(tools, "loan_monthly_payment", principal=200000, annual_rate_percent=6.5, years=30)["monthly_payment"] == 1264.14
    assert call(tools, "is_prime", n=7919)["is_prime"] is True
    assert call(tools, "is_prime", n=91) == {"n": 91, "is_prime": False, "smallest_factor": 7}


def test_errors_raise_for_callers_and_become_messages_for_the_model(tools):
    with pytest.raises(ToolException, match="zero"):
        math_tools.divide_numbers(1, 0)
    assert "divide by zero" in call(tools, "divide_numbers", dividend=1, divisor=0)
    with pytest.raises(ToolException, match="only numbers"):
        math_tools.evaluate_expression("__import__('os')")
    assert "unknown currency" in call(tools, "convert_currency", amount=1, from_currency="USD", to_currency="XYZ")


@pytest.mark.parametrize(
    ("name", "kwargs", "result"),
    [
        ("convert_length", {"value": 6, "from_unit": "ft", "to_unit": "m"}, 1.8288),
        ("convert_length", {"value": 1, "from_unit": "mi", "to_unit": "km"}, 1.609344),
        ("convert_mass", {"value": 10, "from_unit": "lb", "to_unit": "kg"}, 4.5359237),
        ("convert_temperature", {"value": 100, "from_unit": "C", "to_unit": "F"}, 212),
        ("convert_temperature", {"value": 32, "from_unit": "F", "to_unit": "K"}, 273.15),
        ("convert_volume", {"value": 1, "from_unit": "gallon", "to_unit": "l"}, 3.785411784),
        ("convert_speed", {"value": 36, "from_unit": "km/h", "to_unit": "m/s"}, 10),
        ("convert_area", {"value": 1, "from_unit": "ha", "to_unit": "m2"}, 10000),
        ("convert_data_size", {"value": 1, "from_unit": "GiB", "to_unit": "MB"}, 1073.741824),
        ("convert_duration", {"value": 3, "from_unit": "week", "to_unit": "h"}, 504),
        ("convert_pressure", {"value": 1, "from_unit": "atm", "to_unit": "kPa"}, 101.325),
        ("convert_energy", {"value": 1, "from_unit": "kcal", "to_unit": "kJ"}, 4.184),
        ("convert_fuel_economy", {"value": 5, "from_unit": "l_per_100km", "to_unit": "km_per_l"}, 20),
    ],
)
def test_unit_conversions(tools, name, kwargs, result):
    assert call(tools, name, **kwargs)["result"] == pytest.approx(result)


def test_unit_shortcuts_and_bad_units(tools):
    assert call(tools, "miles_to_kilometers", miles=26.2)["kilometers"] == pytest.approx(42.1648128)
    assert call(tools, "kilometers_to_miles", kilometers=10)["miles"] == pytest.approx(6.2137119)
    with pytest.raises(ToolException, match="allowed are"):
        units.convert_length(1, "furlong", "m")
    with pytest.raises(ToolException, match="absolute zero"):
        units.convert_temperature(-300, "C", "K")


def test_currency_uses_the_fixed_snapshot(tools):
    snapshot = json.loads((tool_catalog.CATALOG_DIR / "rates.json").read_text())
    assert "not live" in snapshot["note"]
    assert len(snapshot["rates"]) >= 20 and set(snapshot["rates"]) == set(snapshot["names"])
    out = call(tools, "convert_currency", amount=100, from_currency="usd", to_currency="EUR")
    assert out == {"amount": 100, "from_currency": "USD", "to_currency": "EUR", "rate": 0.9335,
                   "converted": 93.35, "rates_date": snapshot["as_of"]}
    # cross rate through USD: 1 GBP = JPY/GBP
    rate = call(tools, "get_exchange_rate", base_currency="GBP", quote_currency="JPY")["rate"]
    assert rate == pytest.approx(160.88 / 0.7909, rel=1e-6)
    many = call(tools, "convert_currency_to_many", amount=1000, from_currency="USD", to_currencies=["EUR", "JPY"])
    assert many["converted"] == {"EUR": 933.5, "JPY": 160880.0}
    fee = call(tools, "convert_price_with_card_fee", amount=100, from_currency="USD", to_currency="USD", fee_percent=3)
    assert fee["total"] == 103
    assert "EUR" in call(tools, "list_currencies")["currencies"]
    assert currency.RATES_PATH.exists()


def test_dates_and_time_zones(tools):
    tokyo = call(tools, "convert_timezone", datetime="2024-03-14T18:45:00Z", to_timezone="Asia/Tokyo")
    assert tokyo["datetime"] == "2024-03-15T03:45:00+09:00" and tokyo["weekday"] == "Friday"
    naive = call(
        tools, "convert_timezone", datetime="2024-05-02 09:30", from_timezone="America/New_York", to_timezone="Europe/Berlin"
    )
    assert naive["time"] == "15:30"
    # 01:30 + 1h on the spring-forward night in New York is 03:30 EDT
    jump = call(tools, "add_time_to_datetime", datetime="2024-03-10T01:30:00", hours=1, timezone="America/New_York")
    assert jump["datetime"] == "2024-03-10T03:30:00-04:00"
    assert call(tools, "add_business_days", date="2024-03-15", days=3)["date"] == "2024-03-20"
    assert call(tools, "add_business_days", date="2024-03-15", days=3, holidays=["2024-03-18"])["date"] == "2024-03-21"
    assert call(tools, "business_days_between", start_date="2024-04-01", end_date="2024-04-30")["business_days"] == 21
    assert call(tools, "days_between_dates", start_date="2024-01-01", end_date="2024-03-01")["days"] == 60
    assert call(tools, "weekday_of_date", date="1976-07-04")["weekday"] == "Sunday"
    assert call(tools, "iso_week_number", date="2024-12-30")["week"] == 1
    assert call(tools, "parse_date", text="Tue, March 5th, 2024")["date"] == "2024-03-05"
    assert call(tools, "parse_date", text="05/03/2024", day_first=True)["date"] == "2024-03-05"
    assert call(tools, "format_date", date="2024-11-28", style="long")["formatted"] == "Thursday, November 28, 2024"
    la = call(tools, "timezone_utc_offset", timezone="America/Los_Angeles", date="2024-08-01")
    assert (la["utc_offset"], la["is_dst"]) == ("-07:00", True)
    assert call(tools, "time_difference_between_timezones", timezone_a="Europe/London",
                timezone_b="America/Chicago", date="2024-03-20")["hours_a_ahead_of_b"] == 5  # US on DST, UK not yet: 5 h, not 6
    assert call(tools, "unix_timestamp_to_datetime", timestamp=0)["datetime"] == "1970-01-01T00:00:00+00:00"
    assert call(tools, "is_leap_year", year=2100)["is_leap_year"] is False
    assert call(tools, "days_in_month", year=2028, month=2)["days"] == 29
    assert call(tools, "age_on_date", birth_date="1988-09-23", on_date="2024-03-14")["years"] == 35
    assert call(tools, "next_weekday_after", date="2024-12-25", weekday="Friday")["date"] == "2024-12-27"


def test_time_zone_errors_are_clear(monkeypatch):
    with pytest.raises(ToolException, match="IANA"):
        dates.convert_timezone("2024-01-01T00:00:00Z", "Mars/Olympus")

    def no_db(name):
        raise _common.ZoneInfoNotFoundError(name)

    monkeypatch.setattr(_common, "ZoneInfo", no_db)
    monkeypatch.setattr(_common, "available_timezones", set)
    with pytest.raises(ToolException, match="tzdata"):
        dates.add_days_in_timezone("2024-03-14", 1, "Asia/Tokyo")


def test_geo(tools):
    assert call(tools, "get_city_timezone", city="mumbai")["timezone"] == "Asia/Kolkata"
    assert call(tools, "distance_between_cities", city_a="London", city_b="Paris")["km"] == pytest.approx(343.5, abs=2)
    assert call(tools, "haversine_distance", lat1=0, lon1=0, lat2=0, lon2=180)["km"] == pytest.approx(20015.1, abs=1)
    assert call(tools, "local_time_difference_between_cities", city_a="Sydney", city_b="London",
                date="2024-01-15")["hours_a_ahead_of_b"] == 11


def test_text(tools):
    assert call(tools, "count_words", text="The quick brown fox") == {"words": 4}
    assert call(tools, "count_characters", text="Hello, world!", include_spaces=False) == {"characters": 12}
    assert call(tools, "reverse_text", text="stressed") == {"reversed": "desserts"}
    assert call(tools, "slugify_text", text="Héllo, World! 2024") == {"slug": "hello-world-2024"}
    assert call(tools, "to_title_case", text="the return of the king") == {"title": "The Return of the King"}
    assert call(tools, "change_case", text="customer order total", case="snake") == {"text": "customer_order_total"}
    assert call(tools, "change_case", text="customer order total", case="camel") == {"text": "customerOrderTotal"}
    assert call(tools, "count_occurrences", text="Data, data, DATA!", substring="data")["count"] == 3
    assert call(tools, "extract_emails", text="a@b.com, c.d@e.org; a@b.com")["emails"] == ["a@b.com", "c.d@e.org"]
    assert call(tools, "extract_urls", text="see https://x.example.com/a?b=1, and www.foo.org.")["urls"] == [
        "https://x.example.com/a?b=1", "www.foo.org"]
    assert call(tools, "extract_numbers", text="Paid 1,250.50 for 3 chairs")["numbers"] == [1250.5, 3]
    short = call(tools, "truncate_text", text="The quick brown fox jumps over the lazy dog", max_chars=20)
    assert short == {"text": "The quick brown...", "truncated": True}
    assert call(tools, "levenshtein_distance", a="kitten", b="sitting")["distance"] == 3
    assert call(tools, "is_palindrome", text="Was it a car or a cat I saw?")["is_palindrome"] is True
    assert call(tools, "base64_encode", text="hello") == {"base64": "aGVsbG8="}
    assert call(tools, "base64_decode", data="aGVsbG8gd29ybGQ=") == {"text": "hello world"}
    assert call(tools, "sha256_hash", text="abc")["sha256"].startswith("ba7816bf8f01cfea")
    assert call(tools, "checksum_text", text="hello")["hex"] == "5d41402abc4b2a76b9719d911017c592"
    assert call(tools, "normalize_whitespace", text="  a \n\t b  ") == {"text": "a b"}
    assert call(tools, "find_and_replace", text="colour Colour", find="colour", replace="color",
                case_sensitive=False) == {"text": "color color", "replacements": 2}
    assert call(tools, "url_encode", text="rock & roll") == {"text": "rock%20%26%20roll"}
    assert call(tools, "validate_json", text='{"a": 1,}')["valid"] is False
    assert text.validate_json('[1, 2]')["type"] == "array"


# --- shop.db ---------------------------------------------------------------------------------------


def test_order_a1001_lookup(tools):
    order = call(tools, "get_order", order_id="A1001")
    assert order == {
        "order_id": "A1001", "status": "shipped", "order_date": "2024-03-14T18:45:00Z",
        "customer_id": "C001", "customer_name": "Aiko Tanaka", "product_id": "P001",
        "product_name": "Wireless Noise-Cancelling Headphones", "quantity": 1, "price": 129.99,
        "currency": "USD", "shipping_days": 5, "ship_address": "3-7-1 Sakura-dori, Shibuya",
        "destination_city": "Tokyo", "destination_country": "Japan", "destination_timezone": "Asia/Tokyo",
    }
    assert call(tools, "get_order", order_id="#a1001") == order
    assert "no order" in call(tools, "get_order", order_id="A9999")


def test_other_db_lookups(tools):
    c = call(tools, "get_customer", customer_id="C001")
    assert (c["name"], c["email"], c["timezone"]) == ("Aiko Tanaka", "aiko.tanaka@example.com", "Asia/Tokyo")
    assert call(tools, "find_customer_by_email", email="AIKO.TANAKA@example.com")["customer_id"] == "C001"
    assert [o["order_id"] for o in call(tools, "list_customer_orders", customer_id="C001")["orders"]] == ["A1001"]
    found = call(tools, "search_products", keyword="headphones", max_price=140)
    assert [p["product_id"] for p in found["products"]] == ["P001"]
    assert call(tools, "get_product", product_id="P012")["name"] == "Espresso Machine"
    assert call(tools, "get_stock_level", product_id="P007") == {
        "product_id": "P007", "name": "Laptop Stand Aluminium", "stock": 3, "reorder_level": 10, "needs_reorder": True}
    status = call(tools, "list_orders_by_status", status="shipped", limit=50)
    assert "A1001" in [o["order_id"] for o in status["orders"]]
    march = call(tools, "orders_between_dates", start_date="2024-03-01", end_date="2024-03-31")
    assert "A1001" in march["order_ids"] and march["revenue"] > 129.99
    assert call(tools, "customer_total_spent", customer_id="C001")["total_spent"] == 129.99
    assert len(call(tools, "top_selling_products", limit=3)["products"]) == 3


def test_shop_db_has_realistic_size():
    for table in ("customers", "products", "orders"):
        (n,) = database.query(f"SELECT COUNT(*) AS n FROM {table}")[0].values()
        assert 30 <= n <= 60, table
    orphan = database.query(
        "SELECT order_id FROM orders WHERE customer_id NOT IN (SELECT customer_id FROM customers) "
        "OR product_id NOT IN (SELECT product_id FROM products) OR ship_city NOT IN (SELECT city FROM cities)")
    assert orphan == []


def test_shop_db_is_opened_read_only():
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        database.query("DELETE FROM orders")


def test_make_shop_db_regenerates_the_shipped_content(tmp_path):
    fresh = make_shop_db.build(tmp_path / "shop.db")

    def dump(path: Path) -> list[str]:
        con = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            return list(con.iterdump())
        finally:
            con.close()

    assert dump(fresh) == dump(database.DB_PATH)


# --- in-memory calendar and inventory ------------------------------------------------------------------


def test_calendar(tools):
    e1 = call(tools, "add_calendar_event", title="Dentist", date="2024-03-20", start_time="10:00", duration_minutes=90)
    assert e1["event"]["event_id"] == "E1" and e1["event"]["end"] == "11:30"
    e2 = call(tools, "add_calendar_event", title="Call", date="2024-03-20", start_time="11:00")
    assert e2["conflicts"] == ["E1"]
    assert [e["event_id"] for e in call(tools, "list_calendar_events", date="2024-03-20")["events"]] == ["E1", "E2"]
    slots = call(tools, "find_free_time_slots", date="2024-03-20", duration_minutes=45)["free_slots"]
    assert slots == [{"start": "09:00", "end": "10:00"}, {"start": "12:00", "end": "17:00"}]
    moved = call(tools, "reschedule_calendar_event", event_id="E2", new_date="2024-03-22", new_start_time="15:30")
    assert moved["event"]["end"] == "16:30" and moved["conflicts"] == []
    assert call(tools, "delete_calendar_event", event_id="e1")["deleted"]["title"] == "Dentist"
    assert call(tools, "list_calendar_events", date="2024-03-20")["events"] == []
    tool_catalog.reset_state()
    assert calendar_tools.CALENDAR.events == {}


def test_inventory(tools):
    assert call(tools, "check_inventory", product_id="P001")["available"] == 42
    r = call(tools, "reserve_stock", product_id="P001", quantity=5)
    assert r == {"reservation_id": "R1", "product_id": "P001", "quantity": 5, "available_after": 37}
    assert "only 37 units" in call(tools, "reserve_stock", product_id="P001", quantity=100)
    assert call(tools, "release_reservation", reservation_id="R1")["available_after"] == 42
    low = {i["product_id"] for i in call(tools, "low_stock_report")["items"]}
    assert {"P007", "P009"} <= low and "P001" not in low
    assert call(tools, "restock_product", product_id="P009", quantity=20)["available"] == 20
    assert "P009" not in {i["product_id"] for i in call(tools, "low_stock_report")["items"]}
    assert call(tools, "low_stock_report", category="kitchen")["count"] == 1  # the kettle
    tool_catalog.reset_state()
    assert inventory.check_inventory("P009")["available"] == 0  # reloaded from shop.db, which is unchanged


# --- offline fakes ------------------------------------------------------------------------------------

FAKE_CALLS = {
    "get_current_weather": {"city": "Paris", "units": "imperial"},
    "get_weather_forecast": {"city": "Tokyo", "date": "2024-03-20"},
    "get_air_quality": {"city": "Mumbai"},
    "get_sunrise_sunset": {"city": "Stockholm", "date": "2024-06-21"},
    "get_stock_quote": {"symbol": "aapl"},
    "get_stock_price_history": {"symbol": "NVDA", "start_date": "2024-03-01", "end_date": "2024-03-08"},
    "get_crypto_price": {"coin": "BTC", "currency": "EUR"},
    "get_flight_status": {"flight_number": "LH 400", "date": "2024-03-20"},
    "search_flights": {"origin": "FRA", "destination": "NRT", "date": "2024-05-10"},
    "search_hotels": {"city": "Rome", "check_in": "2024-09-12", "nights": 3},
    "get_driving_directions": {"origin": "Alexanderplatz, Berlin", "destination": "Potsdam", "mode": "cycling"},
    "get_traffic_conditions": {"city": "Los Angeles"},
    "track_package": {"tracking_number": "1Z999AA10123456784", "carrier": "ups"},
    "geocode_address": {"address": "10 Downing Street, London"},
    "reverse_geocode": {"latitude": 40.7484, "longitude": -73.9857},
    "find_restaurants": {"city": "Madrid", "cuisine": "sushi"},
    "get_movie_showtimes": {"city": "Toronto", "date": "2024-08-03"},
    "get_sports_scores": {"league": "Premier League", "date": "2024-04-13"},
    "get_public_holidays": {"country_code": "DE", "year": 2025},
    "translate_text": {"text": "Where is the train station?", "target_language": "fr"},
    "detect_language": {"text": "Guten Morgen, wo ist der Bahnhof"},
    "web_search": {"query": "best hiking trails near Zurich", "max_results": 3},
    "get_news_headlines": {"topic": "technology", "country": "gb"},
    "get_wikipedia_summary": {"topic": "Eiffel Tower"},
    "send_email": {"to": "aiko.tanaka@example.com", "subject": "Shipped", "body": "Your order A1001 has shipped."},
    "send_sms": {"phone_number": "+1-555-0100", "message": "Delivery is running late."},
    "post_chat_message": {"channel": "#engineering", "text": "deploy finished"},
    "create_support_ticket": {"subject": "Damaged item", "description": "Order A1005 arrived damaged", "priority": "urgent"},
    "shorten_url": {"url": "https://example.com/some/very/long/path?with=params"},
    "check_website_status": {"url": "https://example.com"},
}


def test_every_fake_has_a_sample_call():
    fakes = {f.__name__ for f in tool_catalog.tool_functions(tool_catalog.fake_apis)}
    assert fakes == set(FAKE_CALLS)


@pytest.mark.parametrize("name", sorted(FAKE_CALLS))
def test_fakes_are_deterministic_json_and_marked(name):
    fn = getattr(tool_catalog.fake_apis, name)
    first = _common.build_tool(fn).invoke(FAKE_CALLS[name])
    again = _common.build_tool(fn).invoke(FAKE_CALLS[name])  # a fresh tool object, same answer
    assert first == again
    assert first["fake"] is True
    json.dumps(first)


def test_fakes_vary_with_their_arguments(tools):
    a = call(tools, "get_current_weather", city="Paris")
    b = call(tools, "get_current_weather", city="Oslo")
    c = call(tools, "get_flight_status", flight_number="LH400", date="2024-03-20")
    d = call(tools, "get_flight_status", flight_number="LH400", date="2024-03-21")
    assert a != b and c != d
    assert call(tools, "detect_language", text="Guten Morgen, wo ist der Bahnhof")["language"] == "de"


# --- the flagship scenario -------------------------------------------------------------------------------


def test_flagship_scenario_composes(tools):
    """Order A1001 -> price in EUR -> delivery date in the destination's time zone, via tool calls only."""
    order = call(tools, "get_order", order_id="A1001")
    money = call(tools, "convert_currency", amount=order["price"], from_currency=order["currency"], to_currency="EUR")
    arrival = call(tools, "add_days_in_timezone", date=order["order_date"], days=order["shipping_days"],
                   timezone=order["destination_timezone"])
    assert money["converted"] == 121.35  # 129.99 USD * 0.9335
    # ordered 18:45 UTC on 14 March = 03:45 on 15 March in Tokyo, + 5 days
    assert arrival["start_local"] == "2024-03-15T03:45:00+09:00"
    assert (arrival["date"], arrival["weekday"]) == ("2024-03-20", "Wednesday")
    for out in (order, money, arrival):
        json.dumps(out)
