"""Promotional discount codes."""

DISCOUNT_CODES = {"WELCOME10": 0.10, "SPRING25": 0.25}


def apply_discount_code(total_cents: int, code: str) -> int:
    """Reduce an order total by the percentage a promotional coupon code grants."""
    rate = DISCOUNT_CODES.get(code.upper(), 0.0)
    return int(total_cents * (1 - rate))
