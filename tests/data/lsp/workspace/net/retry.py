"""Calling flaky network services."""

import random
import time


def retry_with_backoff(call, attempts: int = 5, base_delay: float = 0.5):
    """Retry a failed network request, waiting exponentially longer between tries."""
    for attempt in range(attempts):
        try:
            return call()
        except ConnectionError:
            if attempt == attempts - 1:
                raise
            time.sleep(base_delay * 2**attempt + random.random() * 0.1)
