"""Read-only lookups in `shop.db`, the shop's SQLite database: real offline implementations.

The database is opened read-only for each call (`mode=ro`), so the tools cannot change
it. Prices are in the currency named by each row (USD); order dates are UTC; each
order's destination time zone comes from the `cities` table. `make_shop_db.py`
regenerates the file.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Literal

from langchain_core.tools import ToolException

from ._common import catalog_tool

DB_PATH = Path(__file__).resolve().parent / "shop.db"

OrderStatus = Literal["pending", "processing", "shipped", "delivered", "cancelled"]


def query(sql: str, params: tuple = ()) -> list[dict]:
    """Run one read-only query on shop.db; rows come back as dicts."""
    con = sqlite3.connect(f"{DB_PATH.as_uri()}?mode=ro", uri=True)
    try:
        con.row_factory = sqlite3.Row
        return [dict(r) for r in con.execute(sql, params)]
    finally:
        con.close()


def _id(value: str, prefix: str, example: str) -> str:
    v = value.strip().lstrip("#").upper()
    if not v.startswith(prefix):
        raise ToolException(f"invalid id {value!r}: ids look like {example!r}")
    return v


_ORDER_SQL = """
SELECT o.order_id, o.status, o.order_date, o.customer_id, c.name AS customer_name,
       o.product_id, p.name AS product_name, o.quantity, o.price, o.currency, o.shipping_days,
       o.ship_address, o.ship_city AS destination_city, ci.country AS destination_country,
       ci.timezone AS destination_timezone
FROM orders o JOIN customers c USING (customer_id) JOIN products p USING (product_id)
JOIN cities ci ON ci.city = o.ship_city
"""


@catalog_tool
def get_order(order_id: str) -> dict:
    """Look up one order in the shop database by its order id, with customer, product, price and shipping details.

    Args:
        order_id: The order id, a letter A followed by digits, e.g. "A1001".

    Returns:
        {"order_id", "status", "order_date" (UTC, ISO 8601), "customer_id", "customer_name", "product_id",
        "product_name", "quantity", "price" (order total), "currency", "shipping_days", "ship_address",
        "destination_city", "destination_country", "destination_timezone" (IANA)}.

    Example:
        get_order("A1001") -> {"order_id": "A1001", "price": 129.99, "currency": "USD", "order_date": "2024-03-14T18:45:00Z", ...}
    """
    rows = query(_ORDER_SQL + "WHERE o.order_id = ?", (_id(order_id, "A", "A1001"),))
    if not rows:
        raise ToolException(f"no order with id {order_id!r}; order ids run from A1001 to A1050")
    return rows[0]


_CUSTOMER_SQL = """
SELECT c.customer_id, c.name, c.email, c.phone, c.city, ci.country, ci.timezone, c.joined_date,
       (SELECT COUNT(*) FROM orders o WHERE o.customer_id = c.customer_id) AS order_count
FROM customers c JOIN cities ci USING (city)
"""


@catalog_tool
def get_customer(customer_id: str) -> dict:
    """Look up a customer's profile in the shop database by customer id.

    Args:
        customer_id: The customer id, "C" followed by three digits, e.g. "C001".

    Returns:
        {"customer_id", "name", "email", "phone", "city", "country", "timezone", "joined_date", "order_count"}.
    """
    rows = query(_CUSTOMER_SQL + "WHERE c.customer_id = ?", (_id(customer_id, "C", "C001"),))
    if not rows:
        raise ToolException(f"no customer with id {customer_id!r}")
    return rows[0]


@catalog_tool
def find_customer_by_email(email: str) -> dict:
    """Find a customer in the shop database from their email address.

    Args:
        email: The customer's email address, e.g. "aiko.tanaka@example.com" (case does not matter).

    Returns:
        The customer's profile: {"customer_id", "name", "email", "phone", "city", "country", "timezone", "joined_date", "order_count"}.
    """
    rows = query(_CUSTOMER_SQL + "WHERE lower(c.email) = lower(?)", (email.strip(),))
    if not rows:
        raise ToolException(f"no customer with email {email!r}")
    return rows[0]


@catalog_tool
def get_product(product_id: str) -> dict:
    """Look up a product in the shop catalog by product id: name, category, price and stock.

    Args:
        product_id: The product id, "P" followed by three digits, e.g. "P001".

    Returns:
        {"product_id", "name", "category", "price", "currency", "stock", "reorder_level"}.
    """
    rows = query("SELECT * FROM products WHERE product_id = ?", (_id(product_id, "P", "P001"),))
    if not rows:
        raise ToolException(f"no product with id {product_id!r}")
    return rows[0]


@catalog_tool
def search_products(keyword: str = "", category: str | None = None, max_price: float | None = None, limit: int = 5) -> dict:
    """Search the shop's product catalog by name keyword, category and maximum price.

    Args:
        keyword: Word to look for in the product name, e.g. "headphones"; empty matches all.
        category: One of audio, accessories, computers, office, home, kitchen, outdoor, fitness, books, toys. Defaults to any.
        max_price: Highest price in USD to include. Defaults to no limit.
        limit: Most products to return, 1 to 20. Defaults to 5.

    Returns:
        {"count": total matches, "products": [{"product_id", "name", "category", "price", "currency", "stock"}, ...]} cheapest first.
    """
    sql = "SELECT product_id, name, category, price, currency, stock FROM products WHERE name LIKE ?"
    params: list = [f"%{keyword.strip()}%"]
    if category:
        sql, params = sql + " AND category = ?", [*params, category.strip().lower()]
    if max_price is not None:
        sql, params = sql + " AND price <= ?", [*params, max_price]
    rows = query(sql + " ORDER BY price, product_id", tuple(params))
    return {"count": len(rows), "products": rows[: max(1, min(limit, 20))]}


@catalog_tool
def list_customer_orders(customer_id: str) -> dict:
    """List all orders a customer has placed, newest first.

    Args:
        customer_id: The customer id, e.g. "C001".

    Returns:
        {"customer_id", "orders": [{"order_id", "order_date", "product_name", "price", "currency", "status"}, ...]}.
    """
    cid = _id(customer_id, "C", "C001")
    if not query("SELECT 1 FROM customers WHERE customer_id = ?", (cid,)):
        raise ToolException(f"no customer with id {customer_id!r}")
    rows = query(
        "SELECT o.order_id, o.order_date, p.name AS product_name, o.price, o.currency, o.status "
        "FROM orders o JOIN products p USING (product_id) WHERE o.customer_id = ? ORDER BY o.order_date DESC",
        (cid,),
    )
    return {"customer_id": cid, "orders": rows}


@catalog_tool
def get_stock_level(product_id: str) -> dict:
    """Units in stock for a product according to the shop database (the recorded warehouse count).

    Args:
        product_id: The product id, e.g. "P007".

    Returns:
        {"product_id", "name", "stock", "reorder_level", "needs_reorder": bool}.
    """
    p = get_product(product_id)
    return {"product_id": p["product_id"], "name": p["name"], "stock": p["stock"],
            "reorder_level": p["reorder_level"], "needs_reorder": p["stock"] <= p["reorder_level"]}


@catalog_tool
def list_orders_by_status(status: OrderStatus, limit: int = 10) -> dict:
    """List shop orders that have a given status, oldest first.

    Args:
        status: One of "pending", "processing", "shipped", "delivered", "cancelled".
        limit: Most orders to return, 1 to 50. Defaults to 10.

    Returns:
        {"status", "count": total with that status, "orders": [{"order_id", "order_date", "customer_id", "price", "currency"}, ...]}.
    """
    rows = query(
        "SELECT order_id, order_date, customer_id, price, currency FROM orders WHERE status = ? ORDER BY order_date",
        (status.strip().lower(),),
    )
    return {"status": status, "count": len(rows), "orders": rows[: max(1, min(limit, 50))]}


@catalog_tool
def orders_between_dates(start_date: str, end_date: str) -> dict:
    """Count and total the shop's orders placed between two dates (inclusive, UTC), excluding cancelled ones.

    Args:
        start_date: First day, "YYYY-MM-DD".
        end_date: Last day, "YYYY-MM-DD".

    Returns:
        {"start_date", "end_date", "order_count", "revenue", "currency", "order_ids"}.
    """
    rows = query(
        "SELECT order_id, price, currency FROM orders WHERE status != 'cancelled' "
        "AND substr(order_date, 1, 10) BETWEEN ? AND ? ORDER BY order_date",
        (start_date[:10], end_date[:10]),
    )
    return {"start_date": start_date[:10], "end_date": end_date[:10], "order_count": len(rows),
            "revenue": round(sum(r["price"] for r in rows), 2), "currency": "USD",
            "order_ids": [r["order_id"] for r in rows]}


@catalog_tool
def customer_total_spent(customer_id: str) -> dict:
    """Total amount a customer has spent in the shop (all orders except cancelled ones).

    Args:
        customer_id: The customer id, e.g. "C004".

    Returns:
        {"customer_id", "name", "order_count", "total_spent", "currency"}.
    """
    c = get_customer(customer_id)
    rows = query("SELECT price FROM orders WHERE customer_id = ? AND status != 'cancelled'", (c["customer_id"],))
    return {"customer_id": c["customer_id"], "name": c["name"], "order_count": len(rows),
            "total_spent": round(sum(r["price"] for r in rows), 2), "currency": "USD"}


@catalog_tool
def top_selling_products(limit: int = 5) -> dict:
    """Best-selling products in the shop by units sold (cancelled orders excluded).

    Args:
        limit: How many products to return, 1 to 20. Defaults to 5.

    Returns:
        {"products": [{"product_id", "name", "units_sold", "revenue"}, ...]} best first.
    """
    rows = query(
        "SELECT p.product_id, p.name, SUM(o.quantity) AS units_sold, ROUND(SUM(o.price), 2) AS revenue "
        "FROM orders o JOIN products p USING (product_id) WHERE o.status != 'cancelled' "
        "GROUP BY p.product_id ORDER BY units_sold DESC, revenue DESC, p.product_id LIMIT ?",
        (max(1, min(limit, 20)),),
    )
    return {"products": rows}
