"""Regenerate `shop.db`, the small SQLite shop database behind the lookup tools.

    python examples/tool_catalog/make_shop_db.py [OUT_PATH]   # default: shop.db next to this file

The content is fixed: hand-written cities, customers and products, and orders whose
varying fields come from a SHA-256 hash of the order number (not `random`, so the
rows do not depend on the Python version). Running the script twice gives the same
table contents. Prices are in US dollars (the `currency` column says so); order
dates are UTC timestamps; each order ships to a city whose IANA time zone is in the
`cities` table.

Tables: cities(city, country, timezone, latitude, longitude),
customers(customer_id, name, email, phone, city, joined_date),
products(product_id, name, category, price, currency, stock, reorder_level),
orders(order_id, customer_id, product_id, quantity, price, currency, status,
order_date, shipping_days, ship_address, ship_city).
"""

from __future__ import annotations

import hashlib
import sqlite3
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

DEFAULT_PATH = Path(__file__).resolve().parent / "shop.db"
CURRENCY = "USD"

# (city, country, IANA time zone, latitude, longitude)
CITIES = [
    ("Tokyo", "Japan", "Asia/Tokyo", 35.6762, 139.6503),
    ("Berlin", "Germany", "Europe/Berlin", 52.5200, 13.4050),
    ("Paris", "France", "Europe/Paris", 48.8566, 2.3522),
    ("London", "United Kingdom", "Europe/London", 51.5074, -0.1278),
    ("New York", "United States", "America/New_York", 40.7128, -74.0060),
    ("Chicago", "United States", "America/Chicago", 41.8781, -87.6298),
    ("Los Angeles", "United States", "America/Los_Angeles", 34.0522, -118.2437),
    ("Honolulu", "United States", "Pacific/Honolulu", 21.3069, -157.8583),
    ("Toronto", "Canada", "America/Toronto", 43.6532, -79.3832),
    ("Mexico City", "Mexico", "America/Mexico_City", 19.4326, -99.1332),
    ("Sao Paulo", "Brazil", "America/Sao_Paulo", -23.5505, -46.6333),
    ("Madrid", "Spain", "Europe/Madrid", 40.4168, -3.7038),
    ("Rome", "Italy", "Europe/Rome", 41.9028, 12.4964),
    ("Amsterdam", "Netherlands", "Europe/Amsterdam", 52.3676, 4.9041),
    ("Stockholm", "Sweden", "Europe/Stockholm", 59.3293, 18.0686),
    ("Zurich", "Switzerland", "Europe/Zurich", 47.3769, 8.5417),
    ("Cairo", "Egypt", "Africa/Cairo", 30.0444, 31.2357),
    ("Johannesburg", "South Africa", "Africa/Johannesburg", -26.2041, 28.0473),
    ("Dubai", "United Arab Emirates", "Asia/Dubai", 25.2048, 55.2708),
    ("Mumbai", "India", "Asia/Kolkata", 19.0760, 72.8777),
    ("Singapore", "Singapore", "Asia/Singapore", 1.3521, 103.8198),
    ("Seoul", "South Korea", "Asia/Seoul", 37.5665, 126.9780),
    ("Sydney", "Australia", "Australia/Sydney", -33.8688, 151.2093),
    ("Auckland", "New Zealand", "Pacific/Auckland", -36.8485, 174.7633),
]

# (name, city); ids C001.. in this order, emails first.last@example.com
CUSTOMERS = [
    ("Aiko Tanaka", "Tokyo"), ("Jonas Becker", "Berlin"), ("Camille Dubois", "Paris"),
    ("Oliver Hughes", "London"), ("Maya Johnson", "New York"), ("Ethan Miller", "Chicago"),
    ("Sofia Garcia", "Los Angeles"), ("Keanu Kahale", "Honolulu"), ("Liam Tremblay", "Toronto"),
    ("Valeria Lopez", "Mexico City"), ("Lucas Silva", "Sao Paulo"), ("Lucia Fernandez", "Madrid"),
    ("Marco Rossi", "Rome"), ("Sanne de Vries", "Amsterdam"), ("Erik Lindqvist", "Stockholm"),
    ("Nina Meier", "Zurich"), ("Omar Hassan", "Cairo"), ("Thandiwe Nkosi", "Johannesburg"),
    ("Fatima Al Mansoori", "Dubai"), ("Priya Sharma", "Mumbai"), ("Wei Ling Tan", "Singapore"),
    ("Min-jun Kim", "Seoul"), ("Charlotte Wilson", "Sydney"), ("Aroha Ngata", "Auckland"),
    ("Hiroshi Sato", "Tokyo"), ("Lena Schmidt", "Berlin"), ("Hugo Martin", "Paris"),
    ("Amelia Clarke", "London"), ("Noah Davis", "New York"), ("Grace Lee", "Los Angeles"),
    ("Ana Costa", "Sao Paulo"), ("Pablo Ruiz", "Madrid"), ("Giulia Bianchi", "Rome"),
    ("Daan Jansen", "Amsterdam"), ("Arjun Patel", "Mumbai"), ("Jia Hui Lim", "Singapore"),
    ("Seo-yeon Park", "Seoul"), ("Jack Thompson", "Sydney"), ("Emma Brown", "Toronto"),
    ("Yusuf Ibrahim", "Dubai"),
]

# (name, category, price in USD, stock, reorder_level); ids P001.. in this order
PRODUCTS = [
    ("Wireless Noise-Cancelling Headphones", "audio", 129.99, 42, 10),
    ("Bluetooth Speaker Mini", "audio", 39.50, 8, 15),
    ("USB-C Charging Cable 2m", "accessories", 9.99, 240, 50),
    ("Mechanical Keyboard", "computers", 89.00, 25, 10),
    ("Ergonomic Wireless Mouse", "computers", 34.95, 60, 20),
    ("27-inch 4K Monitor", "computers", 329.00, 6, 5),
    ("Laptop Stand Aluminium", "office", 45.00, 3, 10),
    ("Standing Desk Frame", "office", 279.00, 12, 4),
    ("Noise Machine for Sleep", "home", 49.99, 0, 5),
    ("Smart LED Bulb 4-pack", "home", 29.99, 85, 20),
    ("Robot Vacuum Cleaner", "home", 249.00, 9, 5),
    ("Espresso Machine", "kitchen", 399.00, 7, 3),
    ("Chef's Knife 20cm", "kitchen", 64.50, 31, 10),
    ("Cast Iron Skillet 26cm", "kitchen", 42.00, 18, 8),
    ("Electric Kettle 1.7L", "kitchen", 35.99, 2, 8),
    ("Hiking Backpack 35L", "outdoor", 119.00, 14, 6),
    ("Two-Person Tent", "outdoor", 189.00, 5, 4),
    ("Insulated Water Bottle 750ml", "outdoor", 24.99, 150, 30),
    ("Trail Running Shoes", "outdoor", 134.00, 22, 8),
    ("Yoga Mat 6mm", "fitness", 29.00, 47, 15),
    ("Adjustable Dumbbells 24kg", "fitness", 299.00, 4, 5),
    ("Fitness Tracker Band", "fitness", 59.99, 36, 12),
    ("Paperback: The Pragmatic Programmer", "books", 39.99, 19, 5),
    ("Hardcover: A Brief History of Time", "books", 24.00, 11, 5),
    ("Children's Picture Atlas", "books", 18.50, 1, 4),
    ("Wooden Building Blocks 100pc", "toys", 34.00, 27, 10),
    ("Remote Control Car", "toys", 54.99, 13, 6),
    ("Jigsaw Puzzle 1000pc", "toys", 19.99, 40, 10),
    ("Fountain Pen", "office", 79.00, 16, 5),
    ("A5 Dotted Notebook", "office", 12.50, 210, 40),
    ("Desk Lamp with Dimmer", "office", 38.00, 0, 6),
    ("Portable SSD 1TB", "computers", 109.99, 33, 10),
    ("Webcam 1080p", "computers", 69.00, 21, 8),
    ("Over-Ear Studio Headphones", "audio", 149.00, 10, 5),
    ("Wireless Earbuds", "audio", 79.99, 55, 15),
    ("Air Purifier", "home", 159.00, 8, 4),
    ("Ceramic Dinner Plate Set", "kitchen", 48.00, 23, 6),
    ("Camping Stove", "outdoor", 74.50, 6, 6),
    ("Resistance Bands Set", "fitness", 22.99, 64, 15),
    ("Board Game: Settlers", "toys", 44.95, 17, 6),
]

STREETS = [
    "Harbour Street", "Maple Avenue", "Station Road", "Park Lane", "Lindenstrasse",
    "Rue des Fleurs", "Sakura-dori", "King Street", "Ocean Drive", "Via Roma",
]
# Weighted by repetition: most old orders are delivered.
STATUSES = ["delivered"] * 5 + ["shipped"] * 2 + ["processing", "pending", "cancelled"]
N_ORDERS = 50


def _h(*parts: object) -> int:
    """A stable integer from `parts` (SHA-256), used instead of a seeded `random`."""
    return int.from_bytes(hashlib.sha256("|".join(map(str, parts)).encode()).digest()[:8], "big")


def _email(name: str) -> str:
    return ".".join(name.lower().replace("-", "").split()) + "@example.com"


def _customer_rows() -> list[tuple]:
    rows = []
    for i, (name, city) in enumerate(CUSTOMERS, start=1):
        joined = datetime(2021, 1, 4) + timedelta(days=_h("joined", i) % 1000)
        phone = f"+1-555-{_h('phone', i) % 10000:04d}"
        rows.append((f"C{i:03d}", name, _email(name), phone, city, joined.date().isoformat()))
    return rows


def _product_rows() -> list[tuple]:
    return [(f"P{i:03d}", n, c, p, CURRENCY, s, r) for i, (n, c, p, s, r) in enumerate(PRODUCTS, start=1)]


def _order_rows() -> list[tuple]:
    # A1001 is fixed for the demo: Tokyo, late evening UTC, so the local date is a day ahead.
    rows = [("A1001", "C001", "P001", 1, 129.99, CURRENCY, "shipped", "2024-03-14T18:45:00Z", 5,
             "3-7-1 Sakura-dori, Shibuya", "Tokyo")]
    start = datetime(2024, 1, 2, tzinfo=timezone.utc)
    for n in range(1002, 1000 + N_ORDERS + 1):
        c = _h("customer", n) % len(CUSTOMERS)
        p = _h("product", n) % len(PRODUCTS)
        qty = 1 + _h("qty", n) % 3
        price = round(qty * PRODUCTS[p][2], 2)
        when = start + timedelta(days=_h("day", n) % 178, hours=_h("hour", n) % 24, minutes=15 * (_h("min", n) % 4))
        address = f"{1 + _h('house', n) % 180} {STREETS[_h('street', n) % len(STREETS)]}"
        rows.append((
            f"A{n}", f"C{c + 1:03d}", f"P{p + 1:03d}", qty, price, CURRENCY,
            STATUSES[_h("status", n) % len(STATUSES)], when.strftime("%Y-%m-%dT%H:%M:%SZ"),
            2 + _h("ship", n) % 9, address, CUSTOMERS[c][1],
        ))
    return rows


SCHEMA = """
CREATE TABLE cities (
    city TEXT PRIMARY KEY, country TEXT NOT NULL, timezone TEXT NOT NULL,
    latitude REAL NOT NULL, longitude REAL NOT NULL);
CREATE TABLE customers (
    customer_id TEXT PRIMARY KEY, name TEXT NOT NULL, email TEXT NOT NULL UNIQUE,
    phone TEXT NOT NULL, city TEXT NOT NULL REFERENCES cities(city), joined_date TEXT NOT NULL);
CREATE TABLE products (
    product_id TEXT PRIMARY KEY, name TEXT NOT NULL, category TEXT NOT NULL,
    price REAL NOT NULL, currency TEXT NOT NULL, stock INTEGER NOT NULL, reorder_level INTEGER NOT NULL);
CREATE TABLE orders (
    order_id TEXT PRIMARY KEY, customer_id TEXT NOT NULL REFERENCES customers(customer_id),
    product_id TEXT NOT NULL REFERENCES products(product_id), quantity INTEGER NOT NULL,
    price REAL NOT NULL, currency TEXT NOT NULL, status TEXT NOT NULL,
    order_date TEXT NOT NULL, shipping_days INTEGER NOT NULL,
    ship_address TEXT NOT NULL, ship_city TEXT NOT NULL REFERENCES cities(city));
"""


def build(path: str | Path = DEFAULT_PATH) -> Path:
    """Write the shop database to `path`, replacing any file there; returns the path."""
    path = Path(path)
    path.unlink(missing_ok=True)
    con = sqlite3.connect(path)
    try:
        con.executescript(SCHEMA)
        con.executemany("INSERT INTO cities VALUES (?,?,?,?,?)", CITIES)
        con.executemany("INSERT INTO customers VALUES (?,?,?,?,?,?)", _customer_rows())
        con.executemany("INSERT INTO products VALUES (?,?,?,?,?,?,?)", _product_rows())
        con.executemany("INSERT INTO orders VALUES (?,?,?,?,?,?,?,?,?,?,?)", _order_rows())
        con.commit()
        con.execute("VACUUM")
    finally:
        con.close()
    return path


if __name__ == "__main__":
    print(build(sys.argv[1] if len(sys.argv) > 1 else DEFAULT_PATH))
