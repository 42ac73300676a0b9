// Shopping cart arithmetic for the checkout page.

/** Sum the price of every item times its quantity. */
export function cartTotal(items) {
  return items.reduce((sum, item) => sum + item.price * item.quantity, 0);
}

const applyDiscount = (total, percent) => {
  // Discounts never push the total below zero.
  return Math.max(0, total - (total * percent) / 100);
};

export class Cart {
  constructor() {
    this.items = [];
  }

  /** Add an item, merging quantities of the same product. */
  add(product, quantity = 1) {
    const existing = this.items.find((i) => i.id === product.id);
    if (existing) existing.quantity += quantity;
    else this.items.push({ ...product, quantity });
  }
}
