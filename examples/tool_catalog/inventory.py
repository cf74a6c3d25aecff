"""In-memory warehouse inventory seeded from shop.db: real implementations, no writes to disk.

The state is one module-level `Inventory` (`INVENTORY`), loaded from the products
table on first use; `reset()` drops all changes. Stock that is reserved stays on
hand but is no longer available. Reservation ids are "R1", "R2", ... in order.
"""

from __future__ import annotations

from langchain_core.tools import ToolException

from ._common import catalog_tool
from .database import query


class Inventory:
    def __init__(self) -> None:
        self.items: dict[str, dict] = {}  # product_id -> {"name", "on_hand", "reorder_level"}
        self.reservations: dict[str, dict] = {}  # reservation_id -> {"product_id", "quantity"}
        self.next_id = 1

    def item(self, product_id: str) -> tuple[str, dict]:
        if not self.items:
            for r in query("SELECT product_id, name, stock, reorder_level FROM products ORDER BY product_id"):
                self.items[r["product_id"]] = {"name": r["name"], "on_hand": r["stock"], "reorder_level": r["reorder_level"]}
        pid = product_id.strip().upper()
        if pid not in self.items:
            raise ToolException(f"no product with id {product_id!r}; ids look like 'P001'")
        return pid, self.items[pid]

    def reserved(self, pid: str) -> int:
        return sum(r["quantity"] for r in self.reservations.values() if r["product_id"] == pid)

    def status(self, pid: str) -> dict:
        it, held = self.items[pid], self.reserved(pid)
        return {"product_id": pid, "name": it["name"], "on_hand": it["on_hand"], "reserved": held,
                "available": it["on_hand"] - held, "reorder_level": it["reorder_level"]}


INVENTORY = Inventory()


def reset() -> None:
    """Forget all reservations and restocks; the next call reloads stock from shop.db."""
    INVENTORY.__init__()


def _positive(quantity: int) -> None:
    if quantity <= 0:
        raise ToolException(f"quantity must be a positive whole number, got {quantity}")


@catalog_tool
def check_inventory(product_id: str) -> dict:
    """Live warehouse availability of a product: units on hand, reserved for orders, and available to sell.

    Args:
        product_id: The product id, e.g. "P001".

    Returns:
        {"product_id", "name", "on_hand", "reserved", "available", "reorder_level"}.
    """
    pid, _ = INVENTORY.item(product_id)
    return INVENTORY.status(pid)


@catalog_tool
def reserve_stock(product_id: str, quantity: int) -> dict:
    """Reserve (hold) units of a product for an order so nobody else can buy them; fails if not enough are available.

    Args:
        product_id: The product id, e.g. "P001".
        quantity: How many units to hold, at least 1.

    Returns:
        {"reservation_id": "R1", "product_id", "quantity", "available_after"}.
    """
    _positive(quantity)
    pid, _ = INVENTORY.item(product_id)
    available = INVENTORY.status(pid)["available"]
    if quantity > available:
        raise ToolException(f"only {available} units of {pid} are available, cannot reserve {quantity}")
    rid = f"R{INVENTORY.next_id}"
    INVENTORY.next_id += 1
    INVENTORY.reservations[rid] = {"product_id": pid, "quantity": quantity}
    return {"reservation_id": rid, "product_id": pid, "quantity": quantity, "available_after": available - quantity}


@catalog_tool
def release_reservation(reservation_id: str) -> dict:
    """Cancel a stock reservation and make its units available again.

    Args:
        reservation_id: The id returned by reserve_stock, e.g. "R1".

    Returns:
        {"released": reservation_id, "product_id", "quantity", "available_after"}.
    """
    r = INVENTORY.reservations.pop(reservation_id.strip().upper(), None)
    if r is None:
        raise ToolException(f"no reservation with id {reservation_id!r}")
    return {"released": reservation_id.strip().upper(), **r,
            "available_after": INVENTORY.status(r["product_id"])["available"]}


@catalog_tool
def restock_product(product_id: str, quantity: int) -> dict:
    """Record a delivery of new units into the warehouse for a product.

    Args:
        product_id: The product id, e.g. "P009".
        quantity: Units received, at least 1.

    Returns:
        {"product_id", "name", "on_hand", "reserved", "available", "reorder_level"} after the restock.
    """
    _positive(quantity)
    pid, item = INVENTORY.item(product_id)
    item["on_hand"] += quantity
    return INVENTORY.status(pid)


@catalog_tool
def low_stock_report(category: str | None = None) -> dict:
    """Products whose available stock is at or below their reorder level, i.e. what to reorder now.

    Args:
        category: Only report this product category, e.g. "kitchen". Defaults to all categories.

    Returns:
        {"count", "items": [{"product_id", "name", "available", "reorder_level", "suggested_order"}, ...]} emptiest first.
    """
    INVENTORY.item("P001")  # loads the table on first use
    ids = list(INVENTORY.items)
    if category:
        ids = [r["product_id"] for r in query("SELECT product_id FROM products WHERE category = ?", (category.strip().lower(),))]
    rows = []
    for pid in ids:
        s = INVENTORY.status(pid)
        if s["available"] <= s["reorder_level"]:
            rows.append({"product_id": pid, "name": s["name"], "available": s["available"],
                         "reorder_level": s["reorder_level"], "suggested_order": 2 * s["reorder_level"] - s["available"]})
    rows.sort(key=lambda r: (r["available"], r["product_id"]))
    return {"count": len(rows), "items": rows}
