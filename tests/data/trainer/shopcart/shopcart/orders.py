"""Checkout: turning a cart into an order with totals, and order numbers."""

from __future__ import annotations

import datetime as dt
import itertools
from dataclasses import dataclass
from decimal import Decimal

from .cart import Cart
from .discounts import Coupon, apply_coupons
from .money import Money
from .shipping import Address, free_shipping_applies, shipping_cost, validate_address
from .tax import tax_for_lines

_counter = itertools.count(1)


class CheckoutError(Exception):
    """The cart cannot be checked out; the message tells the shopper why."""


@dataclass(frozen=True)
class OrderTotals:
    """Everything a receipt shows: subtotal, discount, shipping, tax and the grand total."""

    subtotal: Money
    discount: Money
    shipping: Money
    tax: Money

    @property
    def grand_total(self) -> Money:
        return self.subtotal - self.discount + self.shipping + self.tax


def next_order_number(today: dt.date) -> str:
    """A human-friendly order number: the date followed by a running counter."""
    return f"{today:%Y%m%d}-{next(_counter):05d}"


def compute_totals(cart: Cart, address: Address, weight_kg: float, coupons: dict[str, Coupon],
                   categories: dict[str, str], today: dt.date) -> OrderTotals:
    """Work out the receipt for a cart shipped to an address.

    Discounts come off before tax; shipping is free over the threshold in the
    home zone and taxed like goods nowhere.
    """
    subtotal = cart.subtotal()
    discount = apply_coupons(cart, coupons, today)
    if free_shipping_applies(subtotal - discount, address.country):
        shipping = Money(Decimal(0), cart.currency)
    else:
        shipping = shipping_cost(weight_kg, address.country, cart.currency)
    # Spread the discount over the lines in proportion so exempt lines get their share.
    share = (subtotal - discount).amount / subtotal.amount if subtotal.amount else Decimal(0)
    lines = [(line.subtotal().times(share), categories.get(line.sku, "general")) for line in cart.items.values()]
    tax = tax_for_lines(lines, address.country) if lines else Money(Decimal(0), cart.currency)
    return OrderTotals(subtotal, discount, shipping, tax)


def checkout(cart: Cart, address: Address, weight_kg: float, coupons: dict[str, Coupon],
             categories: dict[str, str], today: dt.date) -> tuple[str, OrderTotals]:
    """Place the order: check the cart and the address, compute totals, assign a number."""
    if cart.is_empty():
        raise CheckoutError("the cart is empty")
    problems = validate_address(address)
    if problems:
        raise CheckoutError("; ".join(problems))
    totals = compute_totals(cart, address, weight_kg, coupons, categories, today)
    return next_order_number(today), totals


def refund_amount(totals: OrderTotals, returned_share: Decimal, keep_shipping: bool = True) -> Money:
    """How much to pay back when part of an order is returned.

    The goods, discount and tax are refunded pro rata; shipping only when the
    whole order came back and the shop agreed to refund it.
    """
    goods = (totals.subtotal - totals.discount + totals.tax).times(returned_share)
    if returned_share >= 1 and not keep_shipping:
        return goods + totals.shipping
    return goods
