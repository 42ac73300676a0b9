"""Discount rules: percentages, fixed amounts, buy-x-get-y and coupon codes."""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from decimal import Decimal

from .cart import Cart
from .money import Money


@dataclass(frozen=True)
class Coupon:
    """A coupon code with its discount and the window in which it is valid."""

    code: str
    percent_off: Decimal = Decimal(0)
    amount_off: Decimal = Decimal(0)
    starts: dt.date | None = None
    ends: dt.date | None = None
    minimum_spend: Decimal = Decimal(0)


def percentage_discount(subtotal: Money, percent: Decimal) -> Money:
    """Compute how much a percentage off takes from a subtotal, capped at the subtotal."""
    if not Decimal(0) <= percent <= Decimal(100):
        raise ValueError("percent must be between 0 and 100")
    return subtotal.times(percent / Decimal(100))


def buy_x_get_y_free(cart: Cart, sku: str, buy: int, free: int) -> Money:
    """Discount for a "buy X, get Y free" offer on one product.

    Every complete group of buy + free units makes the cheapest free units
    cost nothing; a partial group gets no discount.
    """
    line = cart.items.get(sku)
    if line is None or buy <= 0 or free <= 0:
        return Money(Decimal(0), cart.currency)
    groups = line.quantity // (buy + free)
    return line.unit_price.times(groups * free)


def coupon_is_valid(coupon: Coupon, subtotal: Money, today: dt.date) -> bool:
    """Check whether a coupon can be used today on an order of this size."""
    if coupon.starts and today < coupon.starts:
        return False
    if coupon.ends and today > coupon.ends:
        return False
    return subtotal.amount >= coupon.minimum_spend


def apply_coupons(cart: Cart, coupons: dict[str, Coupon], today: dt.date) -> Money:
    """Total discount from the coupon codes entered on the cart.

    Unknown or expired codes are ignored. Only the single best coupon counts:
    stacking coupons is not allowed.
    """
    subtotal = cart.subtotal()
    best = Money(Decimal(0), cart.currency)
    for code in cart.coupon_codes:
        coupon = coupons.get(normalize_code(code))
        if coupon is None or not coupon_is_valid(coupon, subtotal, today):
            continue
        value = percentage_discount(subtotal, coupon.percent_off) + Money(coupon.amount_off, cart.currency)
        if value.amount > best.amount:
            best = value
    # Never discount more than the goods cost.
    return best if best.amount <= subtotal.amount else subtotal


def normalize_code(code: str) -> str:
    """Make coupon codes case- and space-insensitive: " save10 " and "SAVE10" match."""
    return "".join(code.split()).upper()


def generate_code(campaign: str, customer_id: int, secret: str) -> str:
    """Derive a personal, hard-to-guess coupon code for one customer in a campaign."""
    digest = hashlib.sha256(f"{campaign}:{customer_id}:{secret}".encode()).hexdigest()
    return f"{campaign[:4].upper()}-{digest[:8].upper()}"
