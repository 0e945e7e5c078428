"""Shared rate limits: two runtimes on one PostgreSQL database (as two processes) share one
count, in the database or in Redis; SQLite counts in memory."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from callable_agents.core.limits import InProcessWindows, PostgresWindows, RateLimits, RedisWindows, rate_limits
from callable_agents.core.runtime import Runtime
from tests.core.two_processes import transport_settings, two_runtimes


@pytest.fixture(params=["postgresql", "redis"])
async def two_stores(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[tuple[RateLimits, RateLimits]]:
    url = request.getfixturevalue("fresh_postgres_url")
    async with two_runtimes(tmp_path, url, **transport_settings(request.param)) as (a, b):
        stores = [rate_limits(a), rate_limits(b)]
        assert all(isinstance(s, RedisWindows if request.param == "redis" else PostgresWindows) for s in stores)
        yield stores[0], stores[1]


def _key(name: str) -> str:
    return f"test:{name}:{uuid.uuid4().hex}"  # Redis outlives the test database


async def test_two_processes_allow_the_limit_once_between_them(two_stores: tuple[RateLimits, RateLimits]) -> None:
    a, b = two_stores
    visitor = _key("visitor")
    answers = [await (a if n % 2 else b).acquire([(visitor, 5)], 60) for n in range(5)]
    assert answers == [None] * 5
    refused = [await a.acquire([(visitor, 5)], 60), await b.acquire([(visitor, 5)], 60)]
    assert all(wait is not None and 55 <= wait <= 60 for wait in refused), refused


async def test_concurrent_requests_never_both_take_the_last_place(two_stores: tuple[RateLimits, RateLimits]) -> None:
    a, b = two_stores
    key = _key("race")
    answers = await asyncio.gather(*[(a if n % 2 else b).acquire([(key, 3)], 60) for n in range(12)])
    assert sum(answer is None for answer in answers) == 3


async def test_a_refused_request_counts_against_no_key(two_stores: tuple[RateLimits, RateLimits]) -> None:
    a, b = two_stores
    ip, visitor = _key("ip"), _key("visitor")
    assert await a.acquire([(ip, 1)], 60) is None
    assert await b.acquire([(visitor, 2), (ip, 1)], 60) is not None  # the address is full
    assert [await a.acquire([(visitor, 2)], 60) for _ in range(3)][:2] == [None, None]


async def test_the_window_slides(two_stores: tuple[RateLimits, RateLimits]) -> None:
    a, b = two_stores
    key = _key("window")
    assert await a.acquire([(key, 1)], 1.0) is None
    assert await b.acquire([(key, 1)], 1.0) == 1  # never 0: "retry now" would be a lie
    await asyncio.sleep(1.1)
    assert await b.acquire([(key, 1)], 1.0) is None


async def test_failures_counted_checked_and_cleared(two_stores: tuple[RateLimits, RateLimits]) -> None:
    a, b = two_stores
    email, ip = _key("email"), _key("ip")
    for _ in range(3):
        assert await a.check([(email, 3), (ip, 10)], 900) is None
        await b.add([email, ip], 900)
    assert (wait := await a.check([(email, 3), (ip, 10)], 900)) is not None and 895 <= wait <= 900
    await b.clear(email)
    assert await a.check([(email, 3), (ip, 10)], 900) is None
    assert await a.check([(ip, 3)], 900) is not None  # the address keeps its count


async def test_sqlite_counts_in_memory(sqlite_runtime: Runtime) -> None:
    assert isinstance(rate_limits(sqlite_runtime), InProcessWindows)
    assert rate_limits(sqlite_runtime) is rate_limits(sqlite_runtime)


async def test_sign_in_failures_in_one_process_refuse_sign_in_in_another(
    tmp_path: Path, fresh_postgres_url: str
) -> None:
    from callable_agents.core.errors import TooManyRequests
    from callable_agents.dashboard.limits import MAX_FAILURES_PER_EMAIL, SignInLimiter

    async with two_runtimes(tmp_path, fresh_postgres_url) as (a, b):
        for n in range(MAX_FAILURES_PER_EMAIL):
            runtime = a if n % 2 else b
            await SignInLimiter.of(runtime).check("10.0.0.1", "Owner@Example.com")
            await SignInLimiter.of(runtime).failed("10.0.0.1", "Owner@Example.com")
        with pytest.raises(TooManyRequests, match=r"too many sign-in attempts: try again in 15 minute\(s\)") as refused:
            await SignInLimiter.of(a).check("10.0.0.2", "owner@example.com")  # the e-mail, from anywhere
        assert 895 <= refused.value.retry_after <= 900
        await SignInLimiter.of(b).check("10.0.0.1", "someone@example.com")  # the address has room left
        await SignInLimiter.of(b).succeeded("OWNER@example.com")
        await SignInLimiter.of(a).check("10.0.0.2", "owner@example.com")
