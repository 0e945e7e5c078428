"""Sign-in attempts, limited per client address and per e-mail.

Failed attempts are counted in a sliding window; past the limit the sign-in page answers
429 with how long to wait, whatever the password. A success clears the e-mail's count.
The counts are the server's shared rate limits (:mod:`callable_agents.core.limits`): in
memory on SQLite, shared by every process on PostgreSQL (or Redis when configured).
"""

from __future__ import annotations

import math

from callable_agents.core.errors import TooManyRequests
from callable_agents.core.limits import RateLimits, rate_limits
from callable_agents.core.runtime import Runtime

WINDOW_SECONDS = 15 * 60
MAX_FAILURES_PER_EMAIL = 10
MAX_FAILURES_PER_ADDRESS = 30


def _address_key(address: str) -> str:
    return f"sign-in:ip:{address}"


def _email_key(email: str) -> str:
    return f"sign-in:email:{email.lower()}"


class SignInLimiter:
    def __init__(self, limits: RateLimits, window: float = WINDOW_SECONDS) -> None:
        self.limits = limits
        self.window = window

    @classmethod
    def of(cls, runtime: Runtime) -> SignInLimiter:
        return cls(rate_limits(runtime))

    async def check(self, address: str, email: str) -> None:
        """Raise :class:`TooManyRequests` when either count is at its limit."""
        wait = await self.limits.check(
            [(_address_key(address), MAX_FAILURES_PER_ADDRESS), (_email_key(email), MAX_FAILURES_PER_EMAIL)], self.window, name="sign_in"
        )
        if wait is not None:
            raise TooManyRequests(f"too many sign-in attempts: try again in {math.ceil(wait / 60)} minute(s)", retry_after=wait)

    async def failed(self, address: str, email: str) -> None:
        await self.limits.add([_address_key(address), _email_key(email)], self.window)

    async def succeeded(self, email: str) -> None:
        await self.limits.clear(_email_key(email))
