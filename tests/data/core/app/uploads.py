"""Upload files to remote storage with retries."""

import random
import time


class UploadError(Exception):
    """Raised when an upload fails for good."""


def backoff_delays(attempts, base=0.5, cap=30.0):
    """Yield exponential backoff delays with full jitter."""
    for attempt in range(attempts):
        yield random.uniform(0, min(cap, base * 2**attempt))


def upload_with_retry(client, path, attempts=5):
    """Retry failed uploads with exponential backoff until one succeeds."""
    last_error = None
    for delay in backoff_delays(attempts):
        try:
            return client.put(path)
        except ConnectionError as exc:
            last_error = exc
            time.sleep(delay)
    raise UploadError(f"upload of {path} failed after {attempts} attempts") from last_error
