"""Shipping: delivery zones, parcel weights, carrier rates and address checks."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from decimal import Decimal

from .money import Money

_POSTCODE = {
    "US": re.compile(r"^\d{5}(-\d{4})?$"),
    "GB": re.compile(r"^[A-Z]{1,2}\d[A-Z\d]? ?\d[A-Z]{2}$", re.IGNORECASE),
    "DE": re.compile(r"^\d{5}$"),
}
_ZONES = {"US": 1, "CA": 2, "MX": 2, "GB": 3, "DE": 3, "FR": 3, "JP": 4, "AU": 4}


@dataclass(frozen=True)
class Address:
    """A delivery address as typed at checkout."""

    name: str
    street: str
    city: str
    postcode: str
    country: str


def validate_address(address: Address) -> list[str]:
    """List what is wrong with a delivery address; an empty list means it looks deliverable."""
    problems = []
    if not address.name.strip():
        problems.append("name is missing")
    if not address.street.strip():
        problems.append("street is missing")
    pattern = _POSTCODE.get(address.country.upper())
    if pattern is not None and not pattern.match(address.postcode.strip()):
        problems.append(f"postcode {address.postcode!r} is not valid for {address.country}")
    if address.country.upper() not in _ZONES:
        problems.append(f"we do not ship to {address.country}")
    return problems


def zone_for(country: str) -> int:
    """Delivery zone of a country: 1 is domestic, higher zones are farther and cost more."""
    try:
        return _ZONES[country.upper()]
    except KeyError:
        raise LookupError(f"no delivery zone for {country}") from None


def volumetric_weight(length_cm: float, width_cm: float, height_cm: float, divisor: int = 5000) -> float:
    """Dimensional weight in kilograms that carriers charge for bulky, light parcels."""
    return length_cm * width_cm * height_cm / divisor


def chargeable_weight(actual_kg: float, dims_cm: tuple[float, float, float]) -> float:
    """The weight the carrier bills: the larger of the real and the volumetric weight, rounded up to 0.5 kg."""
    weight = max(actual_kg, volumetric_weight(*dims_cm))
    return math.ceil(weight * 2) / 2


def shipping_cost(weight_kg: float, country: str, currency: str = "USD", express: bool = False) -> Money:
    """Price of sending a parcel: a base fee per zone plus a rate per half kilogram.

    Express delivery doubles the per-weight part but not the base fee.
    """
    zone = zone_for(country)
    base = Decimal("4.99") + Decimal(zone - 1) * Decimal("3.00")
    per_half_kg = Decimal("0.80") * zone * (2 if express else 1)
    steps = math.ceil(weight_kg * 2)
    return Money(base + per_half_kg * steps, currency)


def free_shipping_applies(subtotal: Money, country: str, threshold: Decimal = Decimal(50)) -> bool:
    """Orders over the threshold ship free, but only inside the home zone."""
    return zone_for(country) == 1 and subtotal.amount >= threshold


def estimate_delivery_days(country: str, express: bool = False) -> tuple[int, int]:
    # Carrier promises per zone, as (earliest, latest) business days.
    zone = zone_for(country)
    earliest, latest = {1: (2, 4), 2: (4, 7), 3: (5, 10), 4: (7, 14)}[zone]
    if express:
        return max(1, earliest // 2), max(2, latest // 2)
    return earliest, latest
