from decimal import Decimal

import pytest

from shopcart.cart import Cart, CartError
from shopcart.money import Money, format_amount, parse_amount
from shopcart.shipping import chargeable_weight, shipping_cost


def test_add_item_merges_same_sku():
    cart = Cart()
    cart.add_item("A1", "Mug", Money(Decimal("8.50")))
    cart.add_item("A1", "Mug", Money(Decimal("8.50")), 2)
    assert cart.item_count() == 3


def test_remove_item_lowers_quantity():
    cart = Cart()
    cart.add_item("A1", "Mug", Money(Decimal("8.50")), 3)
    cart.remove_item("A1", 1)
    assert cart.items["A1"].quantity == 2


def test_parse_amount_with_symbol_and_thousands():
    assert parse_amount("$1,299.00") == Money(Decimal("1299.00"), "USD")


def test_format_amount_negative_euro():
    assert format_amount(Money(Decimal("-3.5"), "EUR")) == "-€3.50"


def test_chargeable_weight_uses_volume_for_big_boxes():
    assert chargeable_weight(1.0, (50, 40, 30)) == 12.0


def test_shipping_cost_express_doubles_weight_part():
    normal = shipping_cost(2.0, "US")
    express = shipping_cost(2.0, "US", express=True)
    assert express.amount > normal.amount


def test_adding_zero_quantity_is_rejected():
    with pytest.raises(CartError):
        Cart().add_item("A1", "Mug", Money(Decimal(1)), 0)
