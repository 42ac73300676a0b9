"""The shopping cart: line items, quantities and the order total."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from .money import Money


class CartError(Exception):
    """An operation on the cart is not allowed (unknown item, bad quantity)."""


@dataclass
class LineItem:
    """One product in the cart with its unit price and quantity."""

    sku: str
    name: str
    unit_price: Money
    quantity: int = 1

    def subtotal(self) -> Money:
        """Price of this line: unit price times quantity."""
        return self.unit_price.times(self.quantity)


@dataclass
class Cart:
    """A customer's cart. Items are keyed by SKU; adding the same SKU twice merges the lines."""

    currency: str = "USD"
    items: dict[str, LineItem] = field(default_factory=dict)
    coupon_codes: list[str] = field(default_factory=list)

    def add_item(self, sku: str, name: str, unit_price: Money, quantity: int = 1) -> LineItem:
        """Put a product in the cart, or raise the quantity if it is already there."""
        if quantity <= 0:
            raise CartError("quantity must be positive")
        if unit_price.currency != self.currency:
            raise CartError(f"cart is in {self.currency}, item priced in {unit_price.currency}")
        line = self.items.get(sku)
        if line is None:
            line = self.items[sku] = LineItem(sku, name, unit_price, quantity)
        else:
            line.quantity += quantity
        return line

    def remove_item(self, sku: str, quantity: int | None = None) -> None:
        """Take a product out of the cart entirely, or lower its quantity by some amount."""
        line = self.items.get(sku)
        if line is None:
            raise CartError(f"{sku} is not in the cart")
        if quantity is None or quantity >= line.quantity:
            del self.items[sku]
        else:
            line.quantity -= quantity

    def item_count(self) -> int:
        """Number of units in the cart, counting each quantity."""
        return sum(line.quantity for line in self.items.values())

    def subtotal(self) -> Money:
        """Sum of all line subtotals before discounts, shipping and tax."""
        total = Money(Decimal(0), self.currency)
        for line in self.items.values():
            total = total + line.subtotal()
        return total

    def is_empty(self) -> bool:
        return not self.items

    def clear(self) -> None:
        """Empty the cart after checkout or when the session expires."""
        self.items.clear()
        self.coupon_codes.clear()

    def merge(self, other: Cart) -> None:
        """Merge a guest cart into this one after the customer logs in.

        Quantities of the same SKU are added; coupons are kept once each.
        """
        for line in other.items.values():
            self.add_item(line.sku, line.name, line.unit_price, line.quantity)
        for code in other.coupon_codes:
            if code not in self.coupon_codes:
                self.coupon_codes.append(code)

    def heaviest_lines(self, weights: dict[str, Decimal], limit: int = 3) -> list[LineItem]:
        # Used by the shipping estimate to explain which items drive the cost.
        ranked = sorted(self.items.values(), key=lambda l: weights.get(l.sku, Decimal(0)) * l.quantity, reverse=True)
        return ranked[:limit]
