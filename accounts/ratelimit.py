"""Sliding-window attempt counters for sign-in: per account and per client address.

Kept in process memory: each worker process counts on its own, so with N workers the effective
limit is at most N times the setting (documented in docs/security.md). Password hashing is the
expensive step these limits protect, so the per-client window counts every attempt and the
per-account window counts failures only.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable


class SlidingWindow:
    def __init__(
        self, *, limit: int, window_seconds: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit = limit
        self.window = window_seconds
        self.clock = clock
        self._events: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _trim(self, key: str, now: float) -> deque[float]:
        events = self._events.setdefault(key, deque())
        while events and events[0] <= now - self.window:
            events.popleft()
        return events

    def retry_after(self, key: str) -> int | None:
        """Seconds to wait when `key` is over its limit, else None."""
        with self._lock:
            now = self.clock()
            events = self._trim(key, now)
            if len(events) < self.limit:
                if not events:
                    self._events.pop(key, None)
                return None
            return max(1, math.ceil(events[0] + self.window - now))

    def hit(self, key: str) -> None:
        with self._lock:
            now = self.clock()
            self._trim(key, now).append(now)
            if len(self._events) > 100_000:  # bound memory under a spray of addresses
                self._events = {k: v for k, v in self._events.items() if v and v[-1] > now - self.window}

    def reset(self, key: str) -> None:
        with self._lock:
            self._events.pop(key, None)


class LoginLimiter:
    def __init__(self, *, per_account: int, per_client: int, window_seconds: float) -> None:
        self.accounts = SlidingWindow(limit=per_account, window_seconds=window_seconds)
        self.clients = SlidingWindow(limit=per_client, window_seconds=window_seconds)

    def check(self, *, email: str, client: str) -> int | None:
        waits = [w for w in (self.clients.retry_after(client), self.accounts.retry_after(email)) if w]
        return max(waits) if waits else None

    def record(self, *, email: str, client: str, success: bool) -> None:
        self.clients.hit(client)
        if success:
            self.accounts.reset(email)
        else:
            self.accounts.hit(email)
