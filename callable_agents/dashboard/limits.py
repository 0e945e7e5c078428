"""Sign-in attempts, limited per client address and per e-mail.

Failed attempts are counted in a sliding window; past the limit the sign-in page answers
429 with how long to wait, whatever the password. A success clears the e-mail's count.
The counts are per process (with several processes, each allows the limit: the shared
limits belong to the scale-out work).
"""

from __future__ import annotations

import math
import time
from collections import deque

from callable_agents.core.errors import TooManyRequests
from callable_agents.core.runtime import Runtime

WINDOW_SECONDS = 15 * 60
MAX_FAILURES_PER_EMAIL = 10
MAX_FAILURES_PER_ADDRESS = 30
_MAX_KEYS = 50_000


class SignInLimiter:
    def __init__(self, window: float = WINDOW_SECONDS) -> None:
        self.window = window
        self._failures: dict[str, deque[float]] = {}

    @classmethod
    def of(cls, runtime: Runtime) -> SignInLimiter:
        return runtime.services.shared(cls, cls)

    def _recent(self, key: str, now: float) -> deque[float]:
        times = self._failures.get(key)
        if times is None:
            return deque()
        while times and times[0] <= now - self.window:
            times.popleft()
        return times

    def check(self, address: str, email: str) -> None:
        """Raise :class:`TooManyRequests` when either count is at its limit."""
        now = time.monotonic()
        for key, limit in ((f"ip:{address}", MAX_FAILURES_PER_ADDRESS), (f"email:{email.lower()}", MAX_FAILURES_PER_EMAIL)):
            times = self._recent(key, now)
            if len(times) >= limit:
                wait = max(1, math.ceil(times[0] + self.window - now))
                raise TooManyRequests(
                    f"too many sign-in attempts: try again in {math.ceil(wait / 60)} minute(s)", retry_after=wait
                )

    def failed(self, address: str, email: str) -> None:
        now = time.monotonic()
        if len(self._failures) > _MAX_KEYS:  # bounded: forget the oldest counts first
            for key in list(self._failures)[: _MAX_KEYS // 10]:
                del self._failures[key]
        for key in (f"ip:{address}", f"email:{email.lower()}"):
            self._failures.setdefault(key, deque()).append(now)

    def succeeded(self, email: str) -> None:
        self._failures.pop(f"email:{email.lower()}", None)
