"""Benchmark: web chat latency, from a visitor's message to the streamed and the whole reply.

    .venv/bin/python bench/web.py [--rounds 5] [--levels 1,50] [--database-url URL]

``callable serve`` runs in its own process with its worker, a widget channel and an agent
whose model is a zero-latency model (the loopback fake OpenAI server, streaming without
delays), so the figures are the framework's own cost: the API, the job queue, the graph
and the event stream. At each level N, N visitors each open a session and the event stream
(``GET .../events``, as the widget does), then send ``--rounds`` messages one after another,
each after the previous reply. For every message it records:

* **first token**: from sending the message to the first ``token`` event;
* **full reply**: from sending the message to the stored reply's ``message`` event.

The server runs at its defaults (the widget's reply policy ``interrupt``: a turn starts as
soon as the message is stored) and prints the settings it changed. Target: first token p50
under 50 ms for one visitor.

Prints p50/p95 per level (milliseconds) and exits 1 if a reply failed to arrive. Set
``BENCH_SERVER_LOG=path`` to keep the server's log. Loopback only; nothing needs the internet.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from bench.processes import free_port, stop, wait_ready  # noqa: E402
from bench.settings_line import from_environment, settings_line  # noqa: E402
from bench.workspace import bench_workspace  # noqa: E402

ORIGIN = "https://shop.example.com"
REPLY = "Thanks for asking! Bella's Bakery opens at 7:00 from Monday to Saturday and closes at 18:00."
HIGH_LIMIT = 10_000  # every visitor comes from 127.0.0.1: rate limits must not shape the figures


def prepare(data_dir: Path, database_url: str | None, openai_url: str) -> tuple[dict[str, str], str]:
    """A migrated database with a workspace, an OpenAI integration, an agent and a widget."""
    from callable_agents.core.bootstrap import close_runtime, open_runtime
    from callable_agents.core.store.channels import create_or_update_channel
    from callable_agents.core.config import Settings

    master_key = base64.b64encode(secrets.token_bytes(32)).decode()
    values: dict[str, object] = {"data_dir": data_dir, "master_key": master_key, "disable_plugin_autoload": True}
    if database_url:
        values["database_url"] = database_url
    settings = Settings(_env_file=None, **values)  # type: ignore[call-arg, arg-type]

    async def go() -> str:
        runtime = await open_runtime(settings, migrate=True)
        try:
            async with runtime.db.session() as session:
                workspace = await bench_workspace(session, runtime, openai_url)
                channel, _ = await create_or_update_channel(
                    session, runtime, workspace.id, name="website", kind="widget", agent="assistant",
                    config={
                        "allowed_origins": [ORIGIN],
                        "messages_per_minute_per_visitor": HIGH_LIMIT,
                        "messages_per_minute_per_ip": HIGH_LIMIT,
                        "sessions_per_minute_per_ip": HIGH_LIMIT,
                    },
                )
                return channel.id
        finally:
            await close_runtime(runtime)

    channel_id = asyncio.run(go())
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CALLABLE_", "OPENAI_"))}
    env.update(
        CALLABLE_DATA_DIR=str(data_dir), CALLABLE_MASTER_KEY=master_key, CALLABLE_DISABLE_PLUGIN_AUTOLOAD="true",
        CALLABLE_LOG_LEVEL="WARNING",
    )
    if database_url:
        env["CALLABLE_DATABASE_URL"] = database_url
    return env, channel_id


@dataclass
class Samples:
    first_token: list[float] = field(default_factory=list)
    full_reply: list[float] = field(default_factory=list)
    whole_only: int = 0  # replies that arrived whole, without streamed tokens (the fallback)
    errors: list[str] = field(default_factory=list)


async def visitor(client: httpx.AsyncClient, base: str, rounds: int, samples: Samples, start: asyncio.Event) -> None:
    """One visitor: a session, the event stream, then ``rounds`` messages, each after the reply."""
    session = await client.post(f"{base}/sessions", headers={"Origin": ORIGIN})
    session.raise_for_status()
    headers = {"Origin": ORIGIN, "Authorization": f"Bearer {session.json()['token']}"}
    events: asyncio.Queue[tuple[float, str, dict[str, object]]] = asyncio.Queue()

    async def listen() -> None:
        async with client.stream("GET", f"{base}/events", headers=headers, timeout=None) as stream:
            buffer = ""
            async for text in stream.aiter_text():
                now = time.perf_counter()
                buffer += text
                while "\n\n" in buffer:
                    block, buffer = buffer.split("\n\n", 1)
                    name = next((line[6:].strip() for line in block.split("\n") if line.startswith("event:")), "")
                    data = "".join(line[5:].strip() for line in block.split("\n") if line.startswith("data:"))
                    if name in ("token", "message"):
                        events.put_nowait((now, name, json.loads(data)))

    listener = asyncio.create_task(listen())
    try:
        await start.wait()
        for round_number in range(rounds):
            sent = time.perf_counter()
            posted = await client.post(f"{base}/messages", json={"text": f"When do you open? ({round_number})"}, headers=headers)
            if posted.status_code != 202:
                samples.errors.append(f"POST messages: {posted.status_code} {posted.text[:200]}")
                return
            first: float | None = None
            while True:
                at, name, data = await asyncio.wait_for(events.get(), timeout=60)
                if name == "token" and first is None:
                    first = at - sent
                elif name == "message" and data.get("author") == "agent":
                    samples.full_reply.append(at - sent)
                    if first is not None:
                        samples.first_token.append(first)
                    else:
                        samples.whole_only += 1
                    break
    except Exception as exc:  # report, keep the other visitors going
        samples.errors.append(f"{type(exc).__name__}: {exc}")
    finally:
        listener.cancel()
        await asyncio.gather(listener, return_exceptions=True)


async def run_level(server_url: str, channel_id: str, visitors: int, rounds: int) -> Samples:
    samples = Samples()
    limits = httpx.Limits(max_connections=visitors * 2 + 10, max_keepalive_connections=visitors * 2 + 10)
    async with httpx.AsyncClient(base_url=server_url, limits=limits, timeout=60) as client:
        base = f"/channels/widget/{channel_id}"
        start = asyncio.Event()
        tasks = [asyncio.create_task(visitor(client, base, rounds, samples, start)) for _ in range(visitors)]
        await asyncio.sleep(0.5)  # every visitor has its session and stream open
        start.set()
        await asyncio.gather(*tasks)
    return samples


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile, in milliseconds."""
    ordered = sorted(values)
    index = max(0, min(len(ordered) - 1, round(fraction * len(ordered) + 0.5) - 1))
    return ordered[index] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="messages per visitor (default 5)")
    parser.add_argument("--levels", default="1,50", help="concurrent visitors, comma-separated (default 1,50)")
    parser.add_argument("--database-url", default=None, help="postgresql://... (default: a SQLite file)")
    args = parser.parse_args()
    levels = [int(level) for level in args.levels.split(",")]

    from callable_agents.testing.openai_server import FakeOpenAI

    with FakeOpenAI(responder=lambda request: REPLY) as fake, tempfile.TemporaryDirectory() as data_dir:
        env, channel_id = prepare(Path(data_dir), args.database_url, fake.base_url)
        port = free_port()
        server_log = open(os.environ.get("BENCH_SERVER_LOG", os.devnull), "w")  # noqa: SIM115 - lives as long as the server
        server = subprocess.Popen(
            [sys.executable, "-m", "callable_agents", "serve", "--port", str(port)],
            env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=server_log,
        )
        try:
            server_url = f"http://127.0.0.1:{port}"
            wait_ready(f"{server_url}/healthz", server)
            asyncio.run(run_level(server_url, channel_id, 1, 1))  # warm-up: imports, graph, model client
            backend = "PostgreSQL" if args.database_url else "SQLite"
            print(f"Web chat latency: zero-latency model (fake OpenAI, streamed), {backend}, worker in the server process")
            print(settings_line(from_environment(env)))
            print(f"{'visitors':>8} {'replies':>8} {'first token p50':>16} {'p95':>8} {'full reply p50':>15} {'p95':>8}")
            failed = False
            for level in levels:
                samples = asyncio.run(run_level(server_url, channel_id, level, args.rounds))
                if samples.errors:
                    failed = True
                    print(f"{level:>8}  {len(samples.errors)} errors, e.g. {samples.errors[0]}")
                if samples.full_reply and samples.first_token:
                    print(
                        f"{level:>8} {len(samples.full_reply):>8} "
                        f"{percentile(samples.first_token, 0.5):>13.1f} ms {percentile(samples.first_token, 0.95):>5.1f} ms "
                        f"{percentile(samples.full_reply, 0.5):>12.1f} ms {percentile(samples.full_reply, 0.95):>5.1f} ms"
                        + (f"  ({samples.whole_only} arrived whole, not streamed)" if samples.whole_only else "")
                    )
                    if level == 1:
                        first_token = percentile(samples.first_token, 0.5)
                        print(f"{'':>8} target (1 visitor): first token p50 < 50 ms: {'met' if first_token < 50 else 'NOT met'}")
        finally:
            stop(server)
            server_log.close()
    if failed:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
