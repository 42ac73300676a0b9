"""Invoices: line items, tax and totals."""

from dataclasses import dataclass


@dataclass
class LineItem:
    description: str
    quantity: int
    unit_price_cents: int


def compute_invoice_total(items: list[LineItem], tax_rate: float) -> int:
    """Sum the line items of an invoice and add sales tax, in cents."""
    subtotal = sum(item.quantity * item.unit_price_cents for item in items)
    return round(subtotal * (1 + tax_rate))


def format_money(cents: int, currency: str = "EUR") -> str:
    """Render an amount of cents as a human readable price with its currency."""
    return f"{cents // 100}.{cents % 100:02d} {currency}"
