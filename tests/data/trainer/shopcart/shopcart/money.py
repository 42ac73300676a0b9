"""Exact money arithmetic with Decimal amounts and ISO 4217 currency codes."""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation

_MINOR_UNITS = {"USD": 2, "EUR": 2, "GBP": 2, "JPY": 0, "KWD": 3}
_AMOUNT = re.compile(r"^\s*(?P<sign>-)?(?P<symbol>[$€£¥])?\s*(?P<number>[\d,]*\.?\d+)\s*(?P<code>[A-Z]{3})?\s*$")
_SYMBOLS = {"$": "USD", "€": "EUR", "£": "GBP", "¥": "JPY"}


class CurrencyMismatch(ValueError):
    """Two amounts in different currencies were combined."""


@dataclass(frozen=True)
class Money:
    """An amount of money in one currency, always rounded to the currency's minor unit."""

    amount: Decimal
    currency: str = "USD"

    def __post_init__(self) -> None:
        object.__setattr__(self, "amount", quantize(self.amount, self.currency))

    def __add__(self, other: Money) -> Money:
        self._check_same_currency(other)
        return Money(self.amount + other.amount, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._check_same_currency(other)
        return Money(self.amount - other.amount, self.currency)

    def times(self, factor: Decimal | int) -> Money:
        """Multiply the amount by a quantity or a rate and round the result."""
        return Money(self.amount * Decimal(factor), self.currency)

    def _check_same_currency(self, other: Money) -> None:
        # Mixing currencies silently is the classic source of wrong invoices.
        if self.currency != other.currency:
            raise CurrencyMismatch(f"cannot combine {self.currency} with {other.currency}")

    def allocate(self, ratios: list[int]) -> list[Money]:
        """Split the amount by integer ratios without losing or inventing a cent.

        The remainder left by rounding down is handed out one minor unit at a
        time to the first shares, so the parts always add up to the whole.
        """
        total = sum(ratios)
        if total <= 0:
            raise ValueError("ratios must add up to a positive number")
        unit = Decimal(1).scaleb(-_MINOR_UNITS.get(self.currency, 2))
        shares = [quantize(self.amount * r / total, self.currency, rounding="ROUND_DOWN") for r in ratios]
        remainder = self.amount - sum(shares)
        i = 0
        while remainder > 0:
            shares[i % len(shares)] += unit
            remainder -= unit
            i += 1
        return [Money(s, self.currency) for s in shares]


def quantize(amount: Decimal, currency: str, rounding: str = ROUND_HALF_EVEN) -> Decimal:
    """Round an amount to the number of decimal places the currency uses (banker's rounding)."""
    places = _MINOR_UNITS.get(currency, 2)
    return Decimal(amount).quantize(Decimal(1).scaleb(-places), rounding=rounding)


def parse_amount(text: str, default_currency: str = "USD") -> Money:
    """Parse a price typed by a person, such as "$1,299.00", "12.5 EUR" or "-3", into Money."""
    match = _AMOUNT.match(text)
    if match is None:
        raise ValueError(f"not an amount of money: {text!r}")
    currency = match.group("code") or _SYMBOLS.get(match.group("symbol") or "", default_currency)
    try:
        value = Decimal(match.group("number").replace(",", ""))
    except InvalidOperation as exc:
        raise ValueError(f"not a number: {text!r}") from exc
    if match.group("sign"):
        value = -value
    return Money(value, currency)


def format_amount(money: Money, *, with_code: bool = False) -> str:
    """Render money for a receipt with a currency symbol and thousands separators."""
    symbol = {v: k for k, v in _SYMBOLS.items()}.get(money.currency, "")
    places = _MINOR_UNITS.get(money.currency, 2)
    number = f"{abs(money.amount):,.{places}f}"
    sign = "-" if money.amount < 0 else ""
    text = f"{sign}{symbol}{number}"
    return f"{text} {money.currency}" if with_code or not symbol else text


def convert(money: Money, target: str, rates: dict[tuple[str, str], Decimal]) -> Money:
    """Convert money to another currency with an exchange-rate table keyed by (from, to)."""
    if money.currency == target:
        return money
    try:
        rate = rates[(money.currency, target)]
    except KeyError:
        # Fall back to the inverse rate when only the other direction is quoted.
        inverse = rates.get((target, money.currency))
        if inverse is None:
            raise LookupError(f"no exchange rate from {money.currency} to {target}") from None
        rate = Decimal(1) / inverse
    return Money(money.amount * rate, target)
