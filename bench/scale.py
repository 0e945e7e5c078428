"""Benchmark: several processes on PostgreSQL.

    .venv/bin/python bench/scale.py [--postgres-url postgresql://postgres@127.0.0.1:5432/test]
                                    [--requests 3000] [--messages 1000] [--e2e-warmup 64]

On a scratch database it creates (and drops), with the fake Twilio and a zero-latency fake
model, everything on loopback:

1. **webhook on PostgreSQL**: ``callable serve`` (worker off) acknowledging signed Twilio
   webhooks beside a bare Starlette endpoint, in alternating rounds (as ``bench/webhook.py``).
   Each acknowledgement waits for its append to be committed; concurrent webhooks share one
   commit (group commit). Targets: >= 0.5x the bare endpoint, p99 < 50 ms.
2. **end to end with 1 and 2 worker processes**: one ``callable serve`` taking the webhooks
   and N ``callable worker`` processes sharing the jobs; messages per second from the first
   webhook to the last reply at Twilio, in the steady state: ``--e2e-warmup`` messages are
   answered first, unmeasured (a worker process's first turns set up what it keeps: the
   compiled graph, the checkpointer's pool, the model client; two processes pay it twice). Target: 2 workers >= 1.6x one. Each run also
   prints the CPU milliseconds per message of each part (web, workers, PostgreSQL, this
   process with the fakes) and the rate those allow with 2 workers on this machine's cores.
3. **webhook to reply with the worker idle in another process**: one message at a time,
   ``--idle-messages`` of them (the web process's wake-up reaches the worker through the
   same fan-out; without it the worker found the message at its next poll, 250 ms).
4. **cross-process event latency**: a live event published by one process (its relay, as the
   worker publishes a token) until another process's relay hands it to its hub, p50/p95/p99,
   for PostgreSQL LISTEN/NOTIFY and for Redis pub/sub (``--redis-url``; skipped when Redis
   does not answer). Events go one every 2 ms (a streamed reply's pace), then as one burst.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402

from bench.processes import free_port, stop  # noqa: E402
from bench.webhook import (  # noqa: E402
    ACCOUNT, TOKEN, Setup, discard_unanswered, end_to_end, load, prepare, print_rounds, signed_requests, start_server,
    start_worker, wait_for_replies, webhook_rounds,
)
from bench.workspace import OPENAI_KEY  # noqa: E402


def _relay(transport: str, url: str, database_url: str, deliver: Any) -> Any:
    from callable_agents.core.conversation.fanout import PostgresRelay, RedisRelay, redis_channel

    if transport == "redis":
        return RedisRelay(url, redis_channel(database_url), deliver)
    return PostgresRelay(url, deliver)


async def _listen(transport: str, url: str, database_url: str, count: int) -> None:
    """The receiving process: one latency per event, printed as JSON when all came (or 30 s passed)."""
    latencies: list[float] = []
    done = asyncio.Event()

    def deliver(_conversation: str | None, event: dict[str, Any]) -> None:
        if "t" in event:
            latencies.append(time.monotonic() - float(event["t"]))  # CLOCK_MONOTONIC: one clock per host
            if len(latencies) >= count:
                done.set()

    relay = _relay(transport, url, database_url, deliver)
    relay.start()
    await asyncio.wait_for(relay.listening.wait(), 30)
    print("ready", flush=True)
    try:
        await asyncio.wait_for(done.wait(), 30)
    except TimeoutError:
        pass
    print(json.dumps(latencies), flush=True)
    await relay.aclose()


async def _publish(transport: str, url: str, database_url: str, count: int, spacing: float) -> None:
    relay = _relay(transport, url, database_url, lambda _c, _e: None)
    relay.start()
    await asyncio.wait_for(relay.listening.wait(), 30)
    for n in range(count):
        # Not a token: consecutive tokens are merged into one event, which would hide their times.
        relay.send("bench-conversation", {"type": "bench", "n": n, "t": time.monotonic()})
        if spacing:
            await asyncio.sleep(spacing)
    await relay.flush(30)
    await relay.aclose()


def event_latency(transport: str, url: str, database_url: str, count: int, spacing: float) -> list[float]:
    """Latencies (s) of ``count`` events from this process to a listener process."""
    listener = subprocess.Popen(
        [sys.executable, __file__, "--listen-events", transport, url, database_url, str(count)],
        stdout=subprocess.PIPE, text=True,
    )
    assert listener.stdout is not None
    if listener.stdout.readline().strip() != "ready":
        listener.kill()
        raise RuntimeError(f"the {transport} listener did not start")
    asyncio.run(_publish(transport, url, database_url, count, spacing))
    out, _ = listener.communicate(timeout=60)
    return [float(x) for x in json.loads(out.strip().splitlines()[-1])]


def _redis_answers(url: str) -> bool:
    import redis

    try:
        return bool(redis.from_url(url, socket_connect_timeout=2).ping())
    except redis.RedisError:
        return False


def print_latencies(transport: str, pace: str, latencies: list[float], count: int) -> None:
    if not latencies:
        print(f"event latency, {transport}, {pace}: nothing arrived")
        return
    ms = sorted(x * 1000 for x in latencies)
    q = statistics.quantiles(ms, n=100) if len(ms) > 1 else [ms[0]] * 99
    print(
        f"event latency, {transport:<10} {pace:<14} p50 {q[49]:6.2f} ms  p95 {q[94]:6.2f} ms  p99 {q[98]:6.2f} ms"
        f"  ({len(ms)}/{count} arrived)"
    )


def idle_latency(setup: Setup, twilio: Any, messages: int) -> list[float]:
    """Milliseconds from a webhook to its reply at Twilio, one message at a time with the
    worker idle in between: ``callable serve`` (worker off) and one ``callable worker``."""
    port = free_port()
    server = start_server(setup.env, port, CALLABLE_RUN_WORKER="false")
    try:
        worker = start_worker(setup.env, Path(setup.env["CALLABLE_DATA_DIR"]) / "worker-idle.log")
        try:
            url = f"http://127.0.0.1:{port}/channels/whatsapp/{setup.channel_id}/inbound"
            latencies = []
            twilio.reset()
            for replies, request in enumerate(signed_requests(setup.channel_id, messages + 3, messages + 3)):
                started = time.perf_counter()
                asyncio.run(load(url, [request], 1))
                wait_for_replies(twilio, replies + 1)
                latencies.append((time.perf_counter() - started) * 1000)
                time.sleep(0.3)  # longer than the worker's poll: it is idle when the next comes
            return latencies[3:]  # the worker's first turns set it up
        finally:
            stop(worker)
    finally:
        stop(server)


def print_cpu_ceiling(cpu: dict[int, dict[str, float]], rates: dict[int, float], messages: int) -> None:
    """CPU milliseconds per message by part, and the 2-worker rate those costs allow on this
    machine's cores: every part shares them, so 2 workers cannot beat cores / (CPU per message),
    however well they share the jobs."""
    cores = os.cpu_count() or 1
    for workers, used in cpu.items():
        per_message = {part: 1000 * seconds / messages for part, seconds in used.items()}
        total = sum(per_message.values())
        parts = ", ".join(f"{part} {ms:.1f}" for part, ms in per_message.items())
        print(f"CPU per message, {workers} worker(s): {parts} = {total:.1f} ms")
        if workers == 2 and total and rates.get(1):
            ceiling = cores * 1000 / total
            print(
                f"  on {cores} cores that allows at most {ceiling:.1f} messages/s with 2 workers, "
                f"{ceiling / rates[1]:.2f}x the 1-worker rate"
            )


def main() -> int:
    if len(sys.argv) == 6 and sys.argv[1] == "--listen-events":
        asyncio.run(_listen(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--postgres-url", default="postgresql://postgres@127.0.0.1:5432/test",
                        help="a PostgreSQL server to create the scratch database on (its admin database)")
    parser.add_argument("--requests", type=int, default=3000, help="measured webhooks per server and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--customers", type=int, default=500)
    parser.add_argument("--messages", type=int, default=1000, help="messages for each end-to-end figure (0: skip them)")
    parser.add_argument(
        "--e2e-warmup", type=int, default=64,
        help="messages answered before each end-to-end figure, unmeasured (each worker process's first turns set it up)",
    )
    parser.add_argument("--idle-messages", type=int, default=20, help="messages for the idle latency figure (0: skip it)")
    parser.add_argument("--events", type=int, default=2000, help="events for each latency figure (0: skip them)")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0", help="the Redis for the Redis latency figures")
    args = parser.parse_args()

    from callable_agents.testing.openai_server import FakeOpenAI
    from callable_agents.testing.twilio_server import FakeTwilio

    name = f"callable_scale_{secrets.token_hex(4)}"
    with psycopg.connect(args.postgres_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    database_url = f"{args.postgres_url.rsplit('/', 1)[0]}/{name}"
    try:
        with FakeTwilio() as twilio, FakeOpenAI(api_key=OPENAI_KEY) as openai, tempfile.TemporaryDirectory() as tmp:
            twilio.add_account(ACCOUNT, TOKEN)
            setup = prepare(Path(tmp) / "data", database_url, twilio.base_url, openai.base_url)
            rounds = webhook_rounds(
                setup, requests=args.requests, rounds=args.rounds, warmup=args.warmup,
                concurrency=args.concurrency, customers=args.customers,
            )
            figures: dict[int, float] = {}
            cpu: dict[int, dict[str, float]] = {}
            for workers in (1, 2) if args.messages else ():
                discard_unanswered(setup)
                cpu[workers] = {}
                figures[workers], _ = end_to_end(
                    setup, twilio, args.messages, args.concurrency, workers=workers, cpu=cpu[workers],
                    warmup=args.e2e_warmup,
                )
            idle = idle_latency(setup, twilio, args.idle_messages) if args.idle_messages else []
        latencies: list[tuple[str, str, list[float]]] = []
        transports = [("postgresql", database_url)]
        if _redis_answers(args.redis_url):
            transports.append(("redis", args.redis_url))
        else:
            print(f"(Redis at {args.redis_url} does not answer: its latency is skipped)")
        for transport, url in transports if args.events else ():
            for pace, spacing in (("one per 2 ms", 0.002), ("one burst", 0.0)):
                latencies.append((transport, pace, event_latency(transport, url, database_url, args.events, spacing)))
    finally:
        with psycopg.connect(args.postgres_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    print(
        f"Several processes on PostgreSQL: loopback, {args.concurrency} connections, "
        f"{args.requests} webhooks per round, {args.rounds} rounds"
    )
    print_rounds(rounds)
    if figures:
        for workers, rate in figures.items():
            print(
                f"end to end, 1 web + {workers} worker process(es): {rate:.1f} messages/s "
                f"({args.messages} messages, after {args.e2e_warmup} unmeasured)"
            )
        scaling = figures[2] / figures[1]
        print(f"2 workers / 1 worker: {scaling:.2f}x (target >= 1.6x: {'met' if scaling >= 1.6 else 'NOT met'})")
        print_cpu_ceiling(cpu, figures, args.messages)
    if idle:
        ordered = sorted(idle)
        print(
            f"webhook to reply, worker idle in another process: p50 {statistics.median(ordered):.1f} ms, "
            f"max {ordered[-1]:.1f} ms ({len(ordered)} messages one at a time)"
        )
    for transport, pace, measured in latencies:
        print_latencies(transport, pace, measured, args.events)
    return 1 if any(bare.failures or ours.failures for bare, ours in rounds) else 0


if __name__ == "__main__":
    raise SystemExit(main())
