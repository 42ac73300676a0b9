"""Stock levels and reservations, so two customers cannot buy the last unit."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field


class OutOfStock(Exception):
    """Not enough units are available to reserve."""


@dataclass
class Reservation:
    """Units held for one cart until checkout finishes or the hold expires."""

    sku: str
    quantity: int
    cart_id: str
    expires_at: float


@dataclass
class Inventory:
    """Thread-safe stock counts with time-limited reservations."""

    on_hand: dict[str, int] = field(default_factory=dict)
    reservations: list[Reservation] = field(default_factory=list)
    hold_seconds: float = 900.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def available(self, sku: str) -> int:
        """Units that can still be sold: stock on hand minus live reservations."""
        held = sum(r.quantity for r in self.reservations if r.sku == sku and r.expires_at > time.time())
        return self.on_hand.get(sku, 0) - held

    def reserve(self, sku: str, quantity: int, cart_id: str) -> Reservation:
        """Hold units of a product for a cart, failing if there are not enough left."""
        with self._lock:
            self.expire_reservations()
            if self.available(sku) < quantity:
                raise OutOfStock(f"only {self.available(sku)} of {sku} left")
            reservation = Reservation(sku, quantity, cart_id, time.time() + self.hold_seconds)
            self.reservations.append(reservation)
            return reservation

    def release(self, cart_id: str) -> int:
        """Give back every unit a cart was holding, e.g. when it is abandoned."""
        with self._lock:
            kept = [r for r in self.reservations if r.cart_id != cart_id]
            freed = sum(r.quantity for r in self.reservations if r.cart_id == cart_id)
            self.reservations = kept
            return freed

    def commit(self, cart_id: str) -> None:
        """Turn a cart's reservations into sales by taking the units off the shelf."""
        with self._lock:
            for r in [r for r in self.reservations if r.cart_id == cart_id]:
                self.on_hand[r.sku] = self.on_hand.get(r.sku, 0) - r.quantity
                self.reservations.remove(r)

    def expire_reservations(self) -> int:
        # Called under the lock: drop holds whose time ran out so their units sell again.
        now = time.time()
        before = len(self.reservations)
        self.reservations = [r for r in self.reservations if r.expires_at > now]
        return before - len(self.reservations)

    def restock(self, sku: str, quantity: int) -> None:
        """Record a delivery from the supplier by adding units to the stock on hand."""
        if quantity <= 0:
            raise ValueError("a delivery must add at least one unit")
        with self._lock:
            self.on_hand[sku] = self.on_hand.get(sku, 0) + quantity

    def low_stock(self, threshold: int = 5) -> list[str]:
        """Products whose available units fell to the reorder threshold or below."""
        return sorted(sku for sku in self.on_hand if self.available(sku) <= threshold)
