"""In-process sliding-window rate limits for the web chat API.

Each key (a visitor, an IP address, per channel) keeps the times of its recent requests;
a request is allowed when fewer than ``limit`` fall inside the window. A refused request is
not counted, and a request checked against several keys counts against all of them or none,
so a visitor limited per IP doesn't also use up their own allowance.

Counts live in this process: behind several server processes each enforces its own
window, so the effective limit is up to that many times higher. That is enough to stop a
runaway script or a flood from one place; a shared limiter (e.g. at the proxy) is the tool
for more.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Hashable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from callable_agents.plugin import Runtime

SERVICE_NAME = "webchat_rate_limiter"
WINDOW_SECONDS = 60.0
MAX_KEYS = 200_000  # above this, idle keys are swept; memory stays bounded under a flood


class SlidingWindowLimiter:
    def __init__(self, *, window: float = WINDOW_SECONDS, clock: Callable[[], float] = time.monotonic) -> None:
        self.window = window
        self._clock = clock
        self._hits: dict[Hashable, deque[float]] = {}
        self._next_sweep = 0.0

    @classmethod
    def of(cls, runtime: Runtime) -> SlidingWindowLimiter:
        return runtime.services.shared(cls, cls)

    def acquire(self, checks: Sequence[tuple[Hashable, int]]) -> int | None:
        """Count one request against every ``(key, limit)``, or none when any is full.

        Returns None when allowed, else the whole seconds to wait (for ``Retry-After``).
        """
        now = self._clock()
        wait = 0.0
        for key, limit in checks:
            hits = self._recent(key, now)
            if hits is not None and len(hits) >= limit:
                wait = max(wait, hits[len(hits) - limit] + self.window - now)
        if wait > 0:
            return max(1, math.ceil(wait))
        for key, _limit in checks:
            self._hits.setdefault(key, deque()).append(now)
        if len(self._hits) > MAX_KEYS and now >= self._next_sweep:
            self._sweep(now)
            self._next_sweep = now + 1.0  # at most one full sweep a second, however busy
        return None

    def _recent(self, key: Hashable, now: float) -> deque[float] | None:
        hits = self._hits.get(key)
        if hits is None:
            return None
        while hits and hits[0] <= now - self.window:
            hits.popleft()
        return hits

    def _sweep(self, now: float) -> None:
        for key in [key for key, hits in self._hits.items() if not hits or hits[-1] <= now - self.window]:
            del self._hits[key]
