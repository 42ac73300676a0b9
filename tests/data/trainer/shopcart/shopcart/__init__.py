"""A small shopping-cart library: prices, carts, discounts, stock, shipping and tax.

The public names are re-exported here so callers can write ``from shopcart import Cart``.
"""

from .cart import Cart, LineItem
from .money import Money, parse_amount

__all__ = ["Cart", "LineItem", "Money", "parse_amount"]
