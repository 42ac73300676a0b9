"""Sales tax and VAT: rates by region and tax on a finished order."""

from __future__ import annotations

from decimal import Decimal

from .money import Money

_VAT = {"GB": Decimal("20"), "DE": Decimal("19"), "FR": Decimal("20"), "JP": Decimal("10")}
_US_STATE = {"CA": Decimal("7.25"), "NY": Decimal("4"), "TX": Decimal("6.25"), "OR": Decimal("0")}
_EXEMPT_CATEGORIES = {"books", "groceries", "medicine"}


def tax_rate(country: str, state: str | None = None) -> Decimal:
    """Percentage of tax charged where the order is delivered (VAT abroad, sales tax per US state)."""
    if country.upper() == "US":
        return _US_STATE.get((state or "").upper(), Decimal(0))
    return _VAT.get(country.upper(), Decimal(0))


def is_exempt(category: str, country: str) -> bool:
    """Whether a product category is free of tax in a country (books and food in some places)."""
    return category.lower() in _EXEMPT_CATEGORIES and country.upper() in {"GB", "US"}


def tax_for_lines(lines: list[tuple[Money, str]], country: str, state: str | None = None) -> Money:
    """Tax owed on an order's lines, skipping exempt categories, rounded once at the end."""
    if not lines:
        raise ValueError("an order needs at least one line")
    rate = tax_rate(country, state) / Decimal(100)
    currency = lines[0][0].currency
    taxable = sum((m.amount for m, category in lines if not is_exempt(category, country)), Decimal(0))
    return Money(taxable * rate, currency)


def price_with_vat(net: Money, country: str) -> Money:
    """Gross price shown to European shoppers: the net price plus VAT."""
    return net.times(1 + tax_rate(country) / Decimal(100))


def net_from_gross(gross: Money, country: str) -> Money:
    """Take VAT back out of a price that includes it, e.g. for refunds."""
    return Money(gross.amount / (1 + tax_rate(country) / Decimal(100)), gross.currency)
