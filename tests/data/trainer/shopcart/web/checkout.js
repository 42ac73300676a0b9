// Browser-side helpers for the checkout page.

/**
 * Format a number of cents as a price string for the page, e.g. 129900 -> "$1,299.00".
 * @param {number} cents
 * @param {string} currency
 */
export function formatCents(cents, currency = "USD") {
  const value = cents / 100;
  return new Intl.NumberFormat("en-US", { style: "currency", currency }).format(value);
}

/**
 * Wait until the user stops typing before calling the function, so the
 * shipping estimate is not requested on every keystroke.
 */
export function debounce(fn, waitMs = 300) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), waitMs);
  };
}

/**
 * Send the cart to the server and retry with exponential backoff when the
 * network fails, giving up after a few attempts.
 */
export async function submitOrder(cart, { attempts = 4, baseDelayMs = 250 } = {}) {
  let lastError;
  for (let i = 0; i < attempts; i++) {
    try {
      const response = await fetch("/api/orders", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(cart),
      });
      if (response.ok) return response.json();
      if (response.status < 500) throw new Error(`order rejected: ${response.status}`);
    } catch (error) {
      lastError = error;
    }
    await new Promise((resolve) => setTimeout(resolve, baseDelayMs * 2 ** i));
  }
  throw lastError ?? new Error("order could not be sent");
}

// Read the quantity inputs of the cart table into a map of SKU to quantity.
export function readQuantities(table) {
  const quantities = {};
  for (const input of table.querySelectorAll("input[data-sku]")) {
    const value = Number.parseInt(input.value, 10);
    quantities[input.dataset.sku] = Number.isFinite(value) && value > 0 ? value : 0;
  }
  return quantities;
}

/**
 * Check a card number with the Luhn checksum before sending it to the payment provider.
 */
export function luhnValid(number) {
  const digits = number.replace(/\D/g, "");
  let sum = 0;
  for (let i = 0; i < digits.length; i++) {
    let d = Number(digits[digits.length - 1 - i]);
    if (i % 2 === 1) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
  }
  return digits.length >= 12 && sum % 10 === 0;
}

// Show an inline error under a form field and mark it invalid for screen readers.
export function showFieldError(field, message) {
  field.setAttribute("aria-invalid", "true");
  let note = field.parentElement.querySelector(".field-error");
  if (!note) {
    note = document.createElement("p");
    note.className = "field-error";
    field.parentElement.appendChild(note);
  }
  note.textContent = message;
}
