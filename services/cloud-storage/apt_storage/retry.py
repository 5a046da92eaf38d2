"""Retries with exponential backoff and jitter for transient transfer errors."""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass
from typing import Callable, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 5          # total tries, the first included
    base_delay: float = 0.5    # seconds before the 2nd try; doubles each time
    max_delay: float = 8.0     # cap on one wait, seconds

    def delay(self, attempt: int) -> float:
        """Wait before try ``attempt + 1`` (attempt counts from 1): full jitter, capped."""
        return random.uniform(0, min(self.max_delay, self.base_delay * 2 ** (attempt - 1)))


def with_retries(fn: Callable[[], T], policy: RetryPolicy, is_transient: Callable[[BaseException], bool],
                 what: str) -> T:
    """Call ``fn``; on a transient error wait and try again, up to ``policy.attempts`` tries.

    A permanent error (per ``is_transient``) or the last transient one propagates unchanged,
    so the caller's error mapping still sees the original exception.
    """
    attempt = 1
    while True:
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001 - filtered by is_transient, re-raised otherwise
            if attempt >= policy.attempts or not is_transient(exc):
                raise
            wait = policy.delay(attempt)
            log.warning("%s failed (%s), try %d/%d in %.1fs", what, type(exc).__name__,
                        attempt + 1, policy.attempts, wait)
            time.sleep(wait)
            attempt += 1
