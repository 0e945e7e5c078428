"""Sliding-window rate limits that hold across processes.

A limit counts hits per key (a visitor, an address, an e-mail) over a window of seconds; a
request is allowed while fewer than ``limit`` hits fall inside it. :meth:`RateLimits.acquire`
counts one hit against several keys at once, all or none (a refused request counts nowhere,
so a visitor limited by their address doesn't also use up their own allowance);
:meth:`~RateLimits.check`, :meth:`~RateLimits.add` and :meth:`~RateLimits.clear` serve
counts of failures (sign-in attempts). Each answers the whole seconds to wait (for
``Retry-After``, never 0) or None.

Where the counts live follows the process's settings (:func:`rate_limits`):

* SQLite (one process): in memory, :class:`InProcessWindows`.
* PostgreSQL: the ``rate_limit_hits`` table, one row per counted hit with its expiry. A
  request takes a transaction-scoped advisory lock per key (in key order: no deadlock),
  counts the key's live rows and inserts its own, so two processes never both take the last
  place. Expired rows of a key go as it is counted; a sweep at most once a minute per process
  removes the rest. Times are the database's clock, the same for every process.
* Redis (``CALLABLE_REDIS_URL``): a sorted set per key, checked and added in one Lua script
  (atomic), timed by Redis's clock, expiring with the window.
"""

from __future__ import annotations

import math
import time
import uuid
import zlib
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from callable_agents.core.observability.metrics import count_rate_limited
from callable_agents.core.runtime import Runtime

MAX_KEYS = 200_000  # in memory, above this idle keys are swept: bounded under a flood
SWEEP_SECONDS = 60.0

Checks = Sequence[tuple[str, int]]  # (key, limit)


def _seconds(wait: float) -> int | None:
    return max(1, math.ceil(wait)) if wait > 0 else None


def _counted(name: str, wait: int | None) -> int | None:
    if wait is not None:
        count_rate_limited(name)
    return wait


class RateLimits:
    """The interface every store implements."""

    async def acquire(self, checks: Checks, window: float, *, name: str = "other") -> int | None:
        """Count one hit against every ``(key, limit)``, or none when any is full (a refusal
        is counted in ``callable_rate_limited_total{limit=name}``)."""
        return _counted(name, await self._acquire(checks, window))

    async def check(self, checks: Checks, window: float, *, name: str = "other") -> int | None:
        """The wait when any key is at its limit, counting nothing."""
        return _counted(name, await self._check(checks, window))

    async def _acquire(self, checks: Checks, window: float) -> int | None:
        raise NotImplementedError

    async def _check(self, checks: Checks, window: float) -> int | None:
        raise NotImplementedError

    async def add(self, keys: Sequence[str], window: float) -> None:
        """Count one hit against each key, whatever its count."""
        raise NotImplementedError

    async def clear(self, key: str) -> None:
        """Forget a key's hits (e.g. a successful sign-in clears the e-mail's failures)."""
        raise NotImplementedError


class InProcessWindows(RateLimits):
    """Counts in this process's memory (SQLite's single process; and the unit under test)."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._hits: dict[str, deque[float]] = {}
        self._next_sweep = 0.0

    def acquire_now(self, checks: Checks, window: float) -> int | None:
        now = self._clock()
        wait = self._wait(checks, window, now)
        if wait is not None:
            return wait
        self._add([key for key, _limit in checks], now, window)
        return None

    async def _acquire(self, checks: Checks, window: float) -> int | None:
        return self.acquire_now(checks, window)

    async def _check(self, checks: Checks, window: float) -> int | None:
        return self._wait(checks, window, self._clock())

    async def add(self, keys: Sequence[str], window: float) -> None:
        self._add(keys, self._clock(), window)

    async def clear(self, key: str) -> None:
        self._hits.pop(key, None)

    def _wait(self, checks: Checks, window: float, now: float) -> int | None:
        wait = 0.0
        for key, limit in checks:
            hits = self._hits.get(key)
            if hits is None:
                continue
            while hits and hits[0] <= now - window:
                hits.popleft()
            if len(hits) >= limit:
                wait = max(wait, hits[len(hits) - limit] + window - now)
        return _seconds(wait)

    def _add(self, keys: Sequence[str], now: float, window: float) -> None:
        for key in keys:
            self._hits.setdefault(key, deque()).append(now)
        if len(self._hits) > MAX_KEYS and now >= self._next_sweep:
            for key in [key for key, hits in self._hits.items() if not hits or hits[-1] <= now - window]:
                del self._hits[key]
            self._next_sweep = now + 1.0  # at most one full sweep a second, however busy


_LOCK = text("SELECT pg_advisory_xact_lock(:lock_id)")
_PRUNE = text("DELETE FROM rate_limit_hits WHERE key = :key AND expires_at <= now()")
_COUNT = text(
    "SELECT count(*), "
    "EXTRACT(EPOCH FROM ((SELECT hit_at FROM rate_limit_hits WHERE key = :key ORDER BY hit_at DESC OFFSET :nth LIMIT 1)"
    " + make_interval(secs => :window) - clock_timestamp())) "
    "FROM rate_limit_hits WHERE key = :key"
)
_INSERT = text(
    "INSERT INTO rate_limit_hits (key, hit_at, expires_at) "
    "VALUES (:key, clock_timestamp(), clock_timestamp() + make_interval(secs => :window))"
)
_CLEAR = text("DELETE FROM rate_limit_hits WHERE key = :key")
_SWEEP = text("DELETE FROM rate_limit_hits WHERE expires_at <= now()")


def _lock_id(key: str) -> int:
    return zlib.crc32(b"callable-rate:" + key.encode()) - 2**31


class PostgresWindows(RateLimits):
    """Counts in the ``rate_limit_hits`` table, serialised per key by advisory locks."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._next_sweep = 0.0

    def _locked_wait(self, session: Session, checks: Checks, window: float) -> int | None:
        for key in sorted({key for key, _limit in checks}):
            session.execute(_LOCK, {"lock_id": _lock_id(key)})
        wait = 0.0
        for key, limit in checks:
            session.execute(_PRUNE, {"key": key})
            # The limit-th newest hit: when it leaves the window, a place frees up.
            count, until = session.execute(_COUNT, {"key": key, "nth": limit - 1, "window": window}).one()
            if count >= limit and until is not None:
                wait = max(wait, float(until))
        return _seconds(wait)

    async def _acquire(self, checks: Checks, window: float) -> int | None:
        def work(session: Session) -> int | None:
            wait = self._locked_wait(session, checks, window)
            if wait is None:
                for key, _limit in checks:
                    session.execute(_INSERT, {"key": key, "window": window})
            return wait

        await self._maybe_sweep()
        return await self.runtime.db.run(work)

    async def _check(self, checks: Checks, window: float) -> int | None:
        return await self.runtime.db.run(lambda session: self._locked_wait(session, checks, window))

    async def add(self, keys: Sequence[str], window: float) -> None:
        def work(session: Session) -> None:
            for key in keys:
                session.execute(_INSERT, {"key": key, "window": window})

        await self._maybe_sweep()
        await self.runtime.db.run(work)

    async def clear(self, key: str) -> None:
        await self.runtime.db.run(lambda session: session.execute(_CLEAR, {"key": key}))

    async def _maybe_sweep(self) -> None:
        now = time.monotonic()
        if now >= self._next_sweep:
            self._next_sweep = now + SWEEP_SECONDS
            await self.runtime.db.run(lambda session: session.execute(_SWEEP))


# KEYS: the keys; ARGV: window (ms), a unique member, then each key's limit (0: don't check).
# Returns the wait in ms (0: allowed, and counted when ARGV[2] is not "").
_REDIS_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[1])
local wait = 0
for i, key in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  local limit = tonumber(ARGV[i + 2])
  if limit > 0 then
    local count = redis.call('ZCARD', key)
    if count >= limit then
      local nth = redis.call('ZRANGE', key, count - limit, count - limit, 'WITHSCORES')
      local w = tonumber(nth[2]) + window - now
      if w > wait then wait = w end
    end
  end
end
if wait == 0 and ARGV[2] ~= '' then
  for i, key in ipairs(KEYS) do
    redis.call('ZADD', key, now, ARGV[2])
    redis.call('PEXPIRE', key, window)
  end
end
return wait
"""


class RedisWindows(RateLimits):
    """Counts in Redis sorted sets (``callable:rate:<key>``), one atomic script a request."""

    def __init__(self, redis_url: str) -> None:
        import redis.asyncio as redis

        self._client: Any = redis.from_url(redis_url, socket_connect_timeout=5)
        self._script: Any = self._client.register_script(_REDIS_SCRIPT)

    async def _run(self, checks: Checks, window: float, count: bool) -> int | None:
        keys = [f"callable:rate:{key}" for key, _limit in checks]
        member = f"{time.time_ns()}-{uuid.uuid4().hex[:8]}" if count else ""
        wait_ms = await self._script(keys=keys, args=[int(window * 1000), member, *[limit for _key, limit in checks]])
        return _seconds(int(wait_ms) / 1000)

    async def _acquire(self, checks: Checks, window: float) -> int | None:
        return await self._run(checks, window, count=True)

    async def _check(self, checks: Checks, window: float) -> int | None:
        return await self._run(checks, window, count=False)

    async def add(self, keys: Sequence[str], window: float) -> None:
        await self._run([(key, 0) for key in keys], window, count=True)

    async def clear(self, key: str) -> None:
        await self._client.delete(f"callable:rate:{key}")

    async def aclose(self) -> None:
        await self._client.aclose()


class _Limits:
    """The process's one store (a service), chosen by its settings."""

    def __init__(self, runtime: Runtime) -> None:
        settings = runtime.settings
        if settings.redis_url is not None:
            self.store: RateLimits = RedisWindows(settings.redis_url.get_secret_value())
        elif not runtime.db.is_sqlite:
            self.store = PostgresWindows(runtime)
        else:
            self.store = InProcessWindows()

    async def aclose(self) -> None:
        if isinstance(self.store, RedisWindows):
            await self.store.aclose()


def rate_limits(runtime: Runtime) -> RateLimits:
    """The process's rate limits: in memory on SQLite, shared on PostgreSQL or Redis."""
    return runtime.services.shared(_Limits, lambda: _Limits(runtime)).store
