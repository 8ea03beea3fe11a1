"""A client-side rate limit: a token bucket per documented venue limit (the adapters' REST
clients take one before each request)."""

from __future__ import annotations

import time

import anyio


class TokenBucket:
    """``capacity`` requests, refilled continuously at ``capacity / window_s``."""

    def __init__(self, capacity: int, window_s: float) -> None:
        self.capacity = float(capacity)
        self.rate = capacity / window_s
        self.tokens = float(capacity)
        self.stamp = time.monotonic()
        self.waited = 0

    async def take(self) -> None:
        while True:
            now = time.monotonic()
            self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now
            if self.tokens >= 1:
                self.tokens -= 1
                return
            self.waited += 1
            await anyio.sleep((1 - self.tokens) / self.rate)
