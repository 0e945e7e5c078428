"""Pacing: a burst of replies to many customers meets no 429 from a Twilio that enforces a
rate per sender; a 429 that still comes is retried after Retry-After; each customer's parts
keep their order and every part is created once."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from bench.whatsapp_burst import run_burst
from callable_agents.plugins.whatsapp.pacing import NETWORK_SLACK, SendPacer


async def test_a_paced_burst_meets_no_429_and_keeps_each_customers_order(tmp_path: Path) -> None:
    # 40 creates at 10/s: unpaced, this machine sends them several times faster than that.
    result = await run_burst(tmp_path, customers=20, parts=2, limit=10, sender_rate=10.0, concurrency=8)
    assert result.creates == 40
    assert (result.throttled, result.duplicates, result.missing, result.out_of_order, result.failed) == (0, 0, 0, 0, 0)
    assert result.rate <= 10.5


async def test_an_unpaced_burst_is_throttled_and_still_delivered_once_in_order(tmp_path: Path) -> None:
    result = await run_burst(tmp_path, customers=20, parts=2, limit=10, sender_rate=None, concurrency=8)
    assert result.throttled > 0  # what pacing prevents: Twilio refused creates with 20429
    # ... and each refused create was retried after Retry-After, behind nothing of its customer.
    assert (result.creates, result.duplicates, result.missing, result.out_of_order, result.failed) == (40, 0, 0, 0, 0)


async def slots(pacer: SendPacer, n: int, **kwargs: object) -> list[float]:
    """The slot each of ``n`` creates was given: when it was asked for plus the wait the pacer
    set (not when its sleep happened to end: a loaded machine wakes sleepers late and in bunches)."""

    async def one() -> float:
        asked = time.monotonic()
        waited = await pacer.wait_for_slot(**kwargs)  # type: ignore[arg-type]
        return asked + waited

    return sorted(await asyncio.gather(*(one() for _ in range(n))))


def most_in_a_second(times: list[float]) -> int:
    return max(sum(1 for t in times if start <= t < start + 1.0) for start in times)


async def test_the_pacer_spaces_one_senders_creates_and_keeps_any_second_within_the_rate() -> None:
    pacer = SendPacer()
    times = await slots(pacer, 45, account_sid="AC1", sender="whatsapp:+1", sender_rate=20.0, account_rate=None)
    gaps = [later - earlier for earlier, later in zip(times, times[1:])]
    assert min(gaps) >= 1 / 20 * 0.8  # evenly spaced, not all at once
    assert most_in_a_second(times) <= 20
    assert times[-1] - times[0] >= 2.0 - NETWORK_SLACK  # 45 creates at 20/s


async def test_senders_are_paced_apart_and_the_account_rate_binds_them_all() -> None:
    pacer = SendPacer()
    started = time.monotonic()
    a, b = await asyncio.gather(
        slots(pacer, 10, account_sid="AC1", sender="whatsapp:+1", sender_rate=10.0, account_rate=None),
        slots(pacer, 10, account_sid="AC1", sender="whatsapp:+2", sender_rate=10.0, account_rate=None),
    )
    assert max(a + b) - started < 1.2  # two senders, ten each at 10/s: side by side, about 0.9 s
    pacer = SendPacer()
    started = time.monotonic()
    c, d = await asyncio.gather(
        slots(pacer, 10, account_sid="AC2", sender="whatsapp:+1", sender_rate=100.0, account_rate=10.0),
        slots(pacer, 10, account_sid="AC2", sender=None, sender_rate=100.0, account_rate=10.0),  # a Messaging Service
    )
    assert most_in_a_second(sorted(c + d)) <= 10
    assert max(c + d) - started >= 1.0  # 20 creates of one account at 10/s


@pytest.mark.parametrize("rate", [None, 0.0])
async def test_no_rate_means_no_wait(rate: float | None) -> None:
    pacer = SendPacer()
    started = time.monotonic()
    await slots(pacer, 50, account_sid="AC1", sender="whatsapp:+1", sender_rate=rate, account_rate=None)
    assert time.monotonic() - started < 0.5
