"""Orders: totals, late fees and refunds."""

from dataclasses import dataclass
from datetime import date


@dataclass
class Order:
    number: str
    total_cents: int
    due: date
    paid: bool = False


def order_total(prices_cents: list[int], tax_rate: float) -> int:
    """Add up the prices of an order and apply sales tax, in cents."""
    return round(sum(prices_cents) * (1 + tax_rate))


def apply_late_fee(order: Order, today: date, fee_percent: float = 5.0) -> int:
    """Charge a penalty on an unpaid order whose due date has passed."""
    if order.paid or today <= order.due:
        return order.total_cents
    return round(order.total_cents * (1 + fee_percent / 100))


def refund(order: Order, amount_cents: int) -> Order:
    """Give money back to the customer, never more than they paid."""
    amount = min(amount_cents, order.total_cents)
    return Order(order.number, order.total_cents - amount, order.due, order.paid)
