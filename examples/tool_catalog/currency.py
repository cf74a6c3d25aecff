"""Currency tools over `rates.json`: a FIXED SNAPSHOT of exchange rates, not live rates.

The file holds units of each currency per 1 USD on one date (`as_of`); a rate between
two currencies is the ratio of their USD rates. Every result carries `rates_date` so
that nobody mistakes it for today's rate.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

from langchain_core.tools import ToolException

from ._common import catalog_tool

RATES_PATH = Path(__file__).resolve().parent / "rates.json"


@cache
def _table() -> dict:
    return json.loads(RATES_PATH.read_text(encoding="utf-8"))


def _rate(from_currency: str, to_currency: str) -> float:
    """Units of `to_currency` per 1 unit of `from_currency`."""
    rates = _table()["rates"]
    for c in (from_currency, to_currency):
        if c not in rates:
            raise ToolException(f"unknown currency {c!r}: use a 3-letter code from {', '.join(rates)}")
    return rates[to_currency] / rates[from_currency]


def _code(c: str) -> str:
    return c.strip().upper()


@catalog_tool
def convert_currency(amount: float, from_currency: str, to_currency: str) -> dict:
    """Convert an amount of money from one currency to another, using a fixed snapshot of exchange rates (not live).

    Args:
        amount: The amount of money in `from_currency`.
        from_currency: ISO 4217 code of the amount's currency, e.g. "USD".
        to_currency: ISO 4217 code to convert into, e.g. "EUR".

    Returns:
        {"amount", "from_currency", "to_currency", "rate", "converted", "rates_date"}; converted is rounded to 2 decimals.

    Example:
        convert_currency(100, "USD", "EUR") -> {..., "rate": 0.9335, "converted": 93.35, "rates_date": "2024-06-28"}
    """
    f, t = _code(from_currency), _code(to_currency)
    rate = _rate(f, t)
    return {"amount": amount, "from_currency": f, "to_currency": t, "rate": round(rate, 6),
            "converted": round(amount * rate, 2), "rates_date": _table()["as_of"]}


@catalog_tool
def get_exchange_rate(base_currency: str, quote_currency: str) -> dict:
    """Exchange rate between two currencies from the fixed rates snapshot (not live).

    Args:
        base_currency: ISO 4217 code of the currency you have, e.g. "GBP".
        quote_currency: ISO 4217 code of the currency you want, e.g. "JPY".

    Returns:
        {"base_currency", "quote_currency", "rate", "inverse_rate", "rates_date"}: 1 base = rate quote.
    """
    b, q = _code(base_currency), _code(quote_currency)
    rate = _rate(b, q)
    return {"base_currency": b, "quote_currency": q, "rate": round(rate, 6),
            "inverse_rate": round(1 / rate, 6), "rates_date": _table()["as_of"]}


@catalog_tool
def list_currencies() -> dict:
    """List the currencies the converter supports, with their names and the date of the rates snapshot.

    Returns:
        {"rates_date": str, "currencies": {"USD": "US dollar", ...}}.
    """
    return {"rates_date": _table()["as_of"], "currencies": dict(_table()["names"])}


@catalog_tool
def convert_currency_to_many(amount: float, from_currency: str, to_currencies: list[str]) -> dict:
    """Convert one amount of money into several currencies at once (fixed rates snapshot, not live).

    Args:
        amount: The amount of money in `from_currency`.
        from_currency: ISO 4217 code of the amount's currency, e.g. "USD".
        to_currencies: ISO 4217 codes to convert into, e.g. ["EUR", "GBP", "JPY"].

    Returns:
        {"amount", "from_currency", "converted": {"EUR": 93.35, ...}, "rates_date"}.
    """
    f = _code(from_currency)
    out = {_code(t): round(amount * _rate(f, _code(t)), 2) for t in to_currencies}
    return {"amount": amount, "from_currency": f, "converted": out, "rates_date": _table()["as_of"]}


@catalog_tool
def convert_price_with_card_fee(amount: float, from_currency: str, to_currency: str, fee_percent: float = 3.0) -> dict:
    """What a foreign purchase costs on your card: currency conversion plus a foreign transaction fee.

    Args:
        amount: The price in the shop's currency.
        from_currency: ISO 4217 code of the price, e.g. "EUR".
        to_currency: ISO 4217 code of your card's currency, e.g. "USD".
        fee_percent: The card's foreign transaction fee in percent. Defaults to 3.

    Returns:
        {"converted", "fee", "total", "currency", "rates_date"}, rounded to 2 decimals.
    """
    f, t = _code(from_currency), _code(to_currency)
    converted = amount * _rate(f, t)
    fee = converted * fee_percent / 100
    return {"converted": round(converted, 2), "fee": round(fee, 2), "total": round(converted + fee, 2),
            "currency": t, "rates_date": _table()["as_of"]}
