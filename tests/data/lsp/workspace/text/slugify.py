"""Text helpers for URLs."""

import re
import unicodedata


def slugify(title: str) -> str:
    """Turn an article title into a lowercase URL slug joined by hyphens."""
    ascii_title = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_title.lower()).strip("-")
