// Turning titles into URL-friendly identifiers.

function slugify(title) {
  // Lowercase the words and join them with dashes, dropping punctuation.
  return title
    .toLowerCase()
    .normalize("NFKD")
    .replace(/[^a-z0-9\s-]/g, "")
    .trim()
    .replace(/\s+/g, "-");
}

function debounce(fn, waitMs) {
  // Call fn only after waitMs milliseconds have passed without another call.
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), waitMs);
  };
}

module.exports = { slugify, debounce };
