"""Benchmark: WhatsApp webhook acknowledgements, beside a bare Starlette endpoint, and end to end.

    .venv/bin/python bench/webhook.py [--requests 3000] [--concurrency 32] [--database-url URL]

Everything runs on loopback in one run, with the same uvicorn settings for both servers:

1. **bare**: a Starlette endpoint that parses the same form and returns the same empty TwiML
   (the floor: what any Starlette webhook costs);
2. **webhook**: ``callable serve`` (worker off) taking signed Twilio webhooks: channel lookup,
   signature check, the message appended to the inbound queue and committed, TwiML answer.
   Filing it (conversation, dedupe, turn job) is the worker's, measured in (3);
3. **end to end**: ``callable serve`` with its worker, a zero-latency model (the fake OpenAI
   server) and the fake Twilio: messages per second from the first webhook to the last
   reply accepted by Twilio.

Targets (issue 5): webhook throughput >= 0.5x the bare endpoint's, webhook p99 < 50 ms.
Each request carries a new MessageSid and is signed beforehand, so signing costs the client
nothing during the measurement. The two servers are measured in alternating rounds and the
ratio is the median of the rounds' ratios (the machine's speed drifts between runs). Prints
a table and whether each target is met; exits 1 only when requests failed.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402

from bench.processes import cpu_seconds, free_port, postgres_cpu_seconds, stop, wait_ready  # noqa: E402
from bench.settings_line import from_environment, settings_line  # noqa: E402
from bench.workspace import OPENAI_KEY, bench_workspace  # noqa: E402

EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'
PUBLIC_BASE_URL = "https://bot.example.com"
ACCOUNT = "AC" + "1f" * 16
TOKEN = "bench-auth-token-0123456789"
SENDER = "whatsapp:+14155238886"


# --- the bare endpoint ------------------------------------------------------------------


def bare_app():  # type: ignore[no-untyped-def]
    """What a minimal Starlette webhook costs: parse the form, answer empty TwiML."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    async def inbound(request: Request) -> Response:
        form = await request.form()
        if not form.get("MessageSid"):
            return Response("MessageSid: required", 400)
        return Response(EMPTY_TWIML, media_type="text/xml")

    return Starlette(routes=[Route("/channels/whatsapp/{channel_id}/inbound", inbound, methods=["POST"])])


def serve_bare(port: int) -> None:
    import uvicorn

    uvicorn.run(bare_app(), host="127.0.0.1", port=port, log_level="warning", lifespan="off")


# --- processes ----------------------------------------------------------------------------


@dataclass
class Setup:
    env: dict[str, str]
    channel_id: str
    settings: object


def discard_unanswered(setup: Setup) -> int:
    """Drop what the webhook-only run queued (and mark any pending turn done), so the
    end-to-end run measures its own messages."""
    from sqlalchemy import delete, update

    from callable_agents.core.bootstrap import close_runtime, open_runtime
    from callable_agents.core.models import Job, QueuedInbound

    async def go() -> int:
        runtime = await open_runtime(setup.settings)  # type: ignore[arg-type]
        try:
            async with runtime.db.session() as session:
                queued = await session.execute(delete(QueuedInbound))
                turns = await session.execute(update(Job).where(Job.status == "pending").values(status="done"))
                return int(queued.rowcount or 0) + int(turns.rowcount or 0)  # type: ignore[attr-defined]
        finally:
            await close_runtime(runtime)

    return asyncio.run(go())


def prepare(data_dir: Path, database_url: str | None, twilio_url: str, openai_url: str) -> Setup:
    """A migrated database with a workspace, Twilio + OpenAI integrations, an agent and a channel."""
    from callable_agents.core.bootstrap import close_runtime, open_runtime
    from callable_agents.core.store.channels import create_or_update_channel
    from callable_agents.core.config import Settings
    from callable_agents.core.store.integrations import connect_integration

    master_key = base64.b64encode(secrets.token_bytes(32)).decode()
    values: dict[str, object] = {
        "data_dir": data_dir, "master_key": master_key, "disable_plugin_autoload": True,
        "public_base_url": PUBLIC_BASE_URL, "twilio_api_base_url": twilio_url, "twilio_messaging_base_url": twilio_url,
    }
    if database_url:
        values["database_url"] = database_url
    settings = Settings(_env_file=None, **values)  # type: ignore[call-arg]

    async def go() -> str:
        runtime = await open_runtime(settings, migrate=True)
        try:
            async with runtime.db.session() as session:
                workspace = await bench_workspace(session, runtime, openai_url)
                await connect_integration(
                    session, runtime.vault, workspace, provider="twilio", name="twilio",
                    public={"account_sid": ACCOUNT}, secrets={"auth_token": TOKEN},
                )
                channel, _ = await create_or_update_channel(
                    session, runtime, workspace.id, name="whatsapp", kind="whatsapp", agent="assistant",
                    integration="twilio", config={"sender": SENDER},
                )
                return channel.id
        finally:
            await close_runtime(runtime)

    channel_id = asyncio.run(go())
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CALLABLE_", "OPENAI_", "TWILIO_"))}
    env.update(
        CALLABLE_DATA_DIR=str(data_dir), CALLABLE_MASTER_KEY=master_key, CALLABLE_DISABLE_PLUGIN_AUTOLOAD="true",
        CALLABLE_PUBLIC_BASE_URL=PUBLIC_BASE_URL, CALLABLE_TWILIO_API_BASE_URL=twilio_url,
        CALLABLE_TWILIO_MESSAGING_BASE_URL=twilio_url, CALLABLE_LOG_LEVEL="WARNING", CALLABLE_ALLOW_PRIVATE_URLS="true",
    )
    if database_url:
        env["CALLABLE_DATABASE_URL"] = database_url
    return Setup(env, channel_id, settings)


def start_server(env: dict[str, str], port: int, **extra: str) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [sys.executable, "-m", "callable_agents", "serve", "--port", str(port)],
        env={**env, **extra}, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    wait_ready(f"http://127.0.0.1:{port}/healthz", process)
    return process


# --- load -------------------------------------------------------------------------------


def signed_requests(channel_id: str, count: int, customers: int) -> list[tuple[bytes, dict[str, str]]]:
    """Bodies and headers of ``count`` Twilio webhooks, each a new MessageSid, signed in advance."""
    from callable_agents.testing.twilio_signing import inbound_params, signed_headers

    url = f"{PUBLIC_BASE_URL}/channels/whatsapp/{channel_id}/inbound"
    prepared = []
    for n in range(count):
        customer = f"whatsapp:+1555{n % customers:07d}"
        params = inbound_params(ACCOUNT, customer, SENDER, f"Hello, message {n}: are you open today?")
        prepared.append((urlencode(params).encode(), signed_headers(TOKEN, url, params)))
    return prepared


@dataclass
class LoadResult:
    requests: int
    seconds: float
    latencies_ms: list[float]
    failures: int

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


async def load(url: str, requests: list[tuple[bytes, dict[str, str]]], concurrency: int) -> LoadResult:
    """POST every request over ``concurrency`` kept-alive connections, as fast as answered."""
    latencies: list[float] = []
    failures = 0
    queue = iter(requests)
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def client() -> None:
            nonlocal failures
            for body, headers in queue:
                started = time.perf_counter()
                async with session.post(url, data=body, headers=headers) as response:
                    text = await response.text()
                latencies.append((time.perf_counter() - started) * 1000)
                if response.status != 200 or text != EMPTY_TWIML:
                    failures += 1

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return LoadResult(len(requests), elapsed, latencies, failures)


def measure(url: str, requests: list[tuple[bytes, dict[str, str]]], concurrency: int, warmup: int) -> LoadResult:
    asyncio.run(load(url, requests[:warmup], concurrency))
    return asyncio.run(load(url, requests[warmup:], concurrency))


def start_worker(env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    """A ``callable worker`` process, once it says it is running."""
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "callable_agents", "worker"], env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT
        )
    deadline = time.monotonic() + 120
    while b" running" not in log_path.read_bytes():
        if process.poll() is not None or time.monotonic() > deadline:
            stop(process)
            raise SystemExit(f"worker did not start:\n{log_path.read_text(errors='replace')[-2000:]}")
        time.sleep(0.1)
    return process


def end_to_end(  # type: ignore[no-untyped-def]
    setup: Setup, twilio, messages: int, concurrency: int, *, workers: int = 0, cpu: dict[str, float] | None = None,
    warmup: int = 0,
) -> tuple[float, float]:
    """(messages per second, seconds) from the first webhook to the last reply at Twilio.

    ``workers=0``: the server runs its own worker; else the server only takes webhooks and
    ``workers`` ``callable worker`` processes do the rest. ``cpu``, when given, is filled
    with the CPU seconds each part used over the run: ``web``, ``workers``, ``postgresql``
    (the local server's processes; 0 on SQLite) and ``bench`` (this process: the load, the
    fake Twilio and the fake model). ``warmup`` messages (other customers) are sent and
    answered first, unmeasured: a process's first turns pay for what it sets up once (the
    compiled graph, the checkpointer's pool, the model client), once per worker process.
    """
    port = free_port()
    env = dict(setup.env)
    process = start_server(env, port, **({"CALLABLE_RUN_WORKER": "false"} if workers else {}))
    worker_processes: list[subprocess.Popen[bytes]] = []
    try:
        for n in range(workers):
            worker_processes.append(start_worker(env, Path(setup.env["CALLABLE_DATA_DIR"]) / f"worker-{n}.log"))
        url = f"http://127.0.0.1:{port}/channels/whatsapp/{setup.channel_id}/inbound"
        prepared = signed_requests(setup.channel_id, warmup + messages, customers=warmup + messages)
        warming, requests = prepared[:warmup], prepared[warmup:]
        if warming:
            twilio.reset()
            asyncio.run(load(url, warming, concurrency))
            wait_for_replies(twilio, warmup)
        twilio.reset()
        before = _cpu_readings(process, worker_processes)
        started = time.perf_counter()
        asyncio.run(load(url, requests, concurrency))
        wait_for_replies(twilio, messages)
        elapsed = time.perf_counter() - started
        if cpu is not None:
            after = _cpu_readings(process, worker_processes)
            cpu.update({part: after[part] - before[part] for part in after})
    finally:
        for worker in worker_processes:
            stop(worker)
        stop(process)
    return messages / elapsed, elapsed


def wait_for_replies(twilio, count: int) -> None:  # type: ignore[no-untyped-def]
    """Until the fake Twilio has accepted ``count`` messages, woken by each as it is accepted
    (exits after 300 s without them). Not by polling ``sent_messages``: each poll copied
    every record under the fake's lock, and with a thousand of them a poll every
    millisecond held the fake's handlers back, a reply up to 200 ms late."""
    if not twilio.wait_for_sent(count, timeout=300):
        raise SystemExit(f"only {len(twilio.sent_messages)} of {count} replies after 300 s")


def _cpu_readings(web: subprocess.Popen[bytes], workers: list[subprocess.Popen[bytes]]) -> dict[str, float]:
    return {
        "web": cpu_seconds(web.pid),
        "workers": sum(cpu_seconds(worker.pid) for worker in workers),
        "postgresql": postgres_cpu_seconds(),
        "bench": cpu_seconds(os.getpid()),
    }


def webhook_rounds(
    setup: Setup, *, requests: int, rounds: int, warmup: int, concurrency: int, customers: int
) -> list[tuple[LoadResult, LoadResult]]:
    """(bare, ours) per round: the bare endpoint and ``callable serve`` (worker off), alternating."""
    total = warmup + requests
    # Fresh MessageSids for every round: a repeated one would be answered as a duplicate.
    prepared = signed_requests(setup.channel_id, total * rounds, customers)
    path = f"/channels/whatsapp/{setup.channel_id}/inbound"
    bare_port, port = free_port(), free_port()
    bare = subprocess.Popen(
        [sys.executable, __file__, "--serve-bare", str(bare_port)], cwd=ROOT,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    ours = start_server(setup.env, port, CALLABLE_RUN_WORKER="false")
    results: list[tuple[LoadResult, LoadResult]] = []
    try:
        wait_ready(f"http://127.0.0.1:{bare_port}/", bare)
        # Rounds alternate between the two servers: the machine's speed drifts, and a
        # ratio of two runs minutes apart measures the drift as much as the servers.
        for round_ in range(rounds):
            chunk = prepared[round_ * total : (round_ + 1) * total]
            bare_result = measure(f"http://127.0.0.1:{bare_port}{path}", chunk, concurrency, warmup)
            our_result = measure(f"http://127.0.0.1:{port}{path}", chunk, concurrency, warmup)
            results.append((bare_result, our_result))
    finally:
        stop(bare)
        stop(ours)
    return results


def print_rounds(rounds: list[tuple[LoadResult, LoadResult]]) -> None:
    """The rounds' table and whether the targets are met (ratio >= 0.5x, p99 < 50 ms)."""
    print(f"{'':<34}{'acks/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'errors':>8}{'ratio':>8}")
    for number, (bare_result, our_result) in enumerate(rounds, 1):
        for name, result in ((f"round {number}: bare Starlette endpoint", bare_result), (f"round {number}: callable webhook", our_result)):
            ratio_text = f"{our_result.per_second / bare_result.per_second:>7.2f}x" if result is our_result else ""
            print(
                f"{name:<34}{result.per_second:>10.0f}{result.percentile(50):>10.1f}"
                f"{result.percentile(99):>10.1f}{result.failures:>8}{ratio_text}"
            )
    ratio = statistics.median(ours.per_second / bare.per_second for bare, ours in rounds)
    p99 = max(ours.percentile(99) for _, ours in rounds)
    met = {True: "met", False: "NOT met"}
    print(f"throughput ratio (median of rounds): {ratio:.2f}x the bare endpoint (target >= 0.5x: {met[ratio >= 0.5]})")
    print(
        f"webhook p99 (worst round): {p99:.1f} ms (target < 50 ms: {met[p99 < 50]}); "
        f"mean {statistics.fmean(latency for _, ours in rounds for latency in ours.latencies_ms):.1f} ms"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=3000, help="measured webhooks per server and round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds, alternating between the two servers")
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--customers", type=int, default=500, help="distinct WhatsApp senders (conversations)")
    parser.add_argument("--e2e-messages", type=int, default=300, help="messages for the end-to-end figure (0: skip it)")
    parser.add_argument("--database-url", default=None, help="a scratch PostgreSQL database, e.g. postgresql://postgres@127.0.0.1/bench (default: a temporary SQLite file)")
    parser.add_argument("--serve-bare", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_bare is not None:
        serve_bare(args.serve_bare)
        return 0

    from callable_agents.testing.openai_server import FakeOpenAI
    from callable_agents.testing.twilio_server import FakeTwilio

    with FakeTwilio() as twilio, FakeOpenAI(api_key=OPENAI_KEY) as openai, tempfile.TemporaryDirectory() as tmp:
        twilio.add_account(ACCOUNT, TOKEN)
        setup = prepare(Path(tmp) / "data", args.database_url, twilio.base_url, openai.base_url)
        rounds = webhook_rounds(
            setup, requests=args.requests, rounds=args.rounds, warmup=args.warmup,
            concurrency=args.concurrency, customers=args.customers,
        )

        if args.e2e_messages:
            discard_unanswered(setup)
            e2e_rate, e2e_seconds = end_to_end(setup, twilio, args.e2e_messages, args.concurrency)

    backend = "PostgreSQL" if args.database_url else "SQLite"
    print(
        f"WhatsApp webhook benchmark: loopback, {args.concurrency} connections, {args.requests} requests per round, "
        f"{args.rounds} rounds, {backend}"
    )
    print("webhook rounds: " + settings_line(from_environment({**setup.env, "CALLABLE_RUN_WORKER": "false"})))
    if args.e2e_messages:
        print("end to end: " + settings_line(from_environment(setup.env)))
    print_rounds(rounds)
    if args.e2e_messages:
        print(
            f"end to end (zero-latency model, fake Twilio): {e2e_rate:.1f} messages/s "
            f"({args.e2e_messages} messages answered in {e2e_seconds:.1f} s)"
        )
    return 1 if any(bare.failures or ours.failures for bare, ours in rounds) else 0


if __name__ == "__main__":
    raise SystemExit(main())
