"""Per-key rate limits (moving window, in process) with the ``limits`` library.

slowapi, the usual wrapper, finds no handlers on the routers of the FastAPI in use and so never
limits anything; ``limits`` is the library slowapi itself is built on. A key is counted only
after it has been authenticated, so a forged token cannot spend another key's allowance;
unauthenticated calls (registration) are counted by client address."""

from __future__ import annotations

import time

from fastapi import HTTPException, Request
from limits import RateLimitItem, parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

__all__ = ["RateLimiter", "limit_address"]


class RateLimiter:
    def __init__(self, rule: str) -> None:
        try:
            self.item: RateLimitItem = parse(rule)
        except ValueError as exc:
            raise ValueError(f"{rule!r} is not a rate limit like '600/minute': {exc}") from None
        self._limiter = MovingWindowRateLimiter(MemoryStorage())

    def hit(self, key: str) -> None:
        """Count one request for ``key``; raise 429 with Retry-After once over the limit."""
        if self._limiter.hit(self.item, key):
            return
        reset = self._limiter.get_window_stats(self.item, key).reset_time
        retry_after = max(1, int(reset - time.time()) + 1)
        raise HTTPException(
            429,
            f"more than {self.item} for this key; retry in {retry_after} s",
            headers={"Retry-After": str(retry_after)},
        )


def limit_address(request: Request) -> None:
    """Rate-limit an unauthenticated call by the client's address."""
    limiter: RateLimiter = request.app.state.rate_limiter
    limiter.hit(f"address:{request.client.host if request.client else 'unknown'}")
