"""Saving and loading orders as JSON files, safely against crashes."""

from __future__ import annotations

import json
import os
import tempfile
from decimal import Decimal
from pathlib import Path
from typing import Any

from .cart import Cart, LineItem
from .money import Money


def cart_to_dict(cart: Cart) -> dict[str, Any]:
    """Turn a cart into plain JSON-ready data, amounts as strings so no precision is lost."""
    return {
        "currency": cart.currency,
        "coupons": list(cart.coupon_codes),
        "items": [
            {"sku": l.sku, "name": l.name, "price": str(l.unit_price.amount), "quantity": l.quantity}
            for l in cart.items.values()
        ],
    }


def cart_from_dict(data: dict[str, Any]) -> Cart:
    """Rebuild a cart from the data written by cart_to_dict, validating every field."""
    cart = Cart(currency=data.get("currency", "USD"))
    for item in data.get("items", []):
        price = Money(Decimal(item["price"]), cart.currency)
        cart.items[item["sku"]] = LineItem(item["sku"], item["name"], price, int(item["quantity"]))
    cart.coupon_codes = list(data.get("coupons", []))
    return cart


def write_atomic(path: Path, text: str) -> None:
    """Write a file so readers see the old or the new content, never half of it.

    The text goes to a temporary file in the same folder, is flushed to disk,
    and is renamed over the target in one step.
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def save_cart(cart: Cart, folder: Path, cart_id: str) -> Path:
    """Persist a customer's cart under its id so it survives a server restart."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{cart_id}.json"
    write_atomic(path, json.dumps(cart_to_dict(cart), indent=2, sort_keys=True))
    return path


def load_cart(folder: Path, cart_id: str) -> Cart | None:
    """Read a saved cart back, or None when there is none or the file is damaged."""
    path = folder / f"{cart_id}.json"
    try:
        return cart_from_dict(json.loads(path.read_text("utf-8")))
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError):
        # A damaged file should not take the checkout down; start from an empty cart.
        return None


def purge_old_carts(folder: Path, max_age_seconds: float, now: float) -> int:
    """Delete saved carts nobody touched for a long time; returns how many were removed."""
    removed = 0
    for path in folder.glob("*.json"):
        if now - path.stat().st_mtime > max_age_seconds:
            path.unlink(missing_ok=True)
            removed += 1
    return removed
