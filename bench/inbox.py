"""Benchmark: the Conversations inbox at scale, and from a webhook to the open inbox.

    .venv/bin/python bench/inbox.py [--conversations 100000] [--messages 1000000]
        [--backends sqlite,postgresql] [--renders 200] [--webhooks 100]

For each backend it seeds one workspace with ``--conversations`` WhatsApp conversations and
``--messages`` messages (bulk inserts: ``executemany`` on SQLite, ``COPY`` on PostgreSQL),
then measures, in this process against the real app (ASGI, a signed-in member's session):

* **list render**: ``GET /dashboard/conversations`` (the first page, 50 rows, newest
  activity first), also filtered by status and by channel and a page deep (``before``);
  p50/p95 over ``--renders`` requests each;
* **baseline**: a bare Starlette page rendering a 50-row Jinja2 table of the same shape
  from memory (no database, no session): what any page costs here;
* **webhook to screen** (SQLite, at the seeded size): uvicorn on loopback with the worker
  on, a member's inbox event stream open (``/dashboard/conversations/events``); each signed
  WhatsApp webhook is posted and timed until its message's row arrives on the stream.

Targets: list p95 under 100 ms; webhook-to-screen p50 under 100 ms. PostgreSQL is
``CALLABLE_BENCH_POSTGRES_URL`` or ``postgresql://postgres@127.0.0.1:5432/test`` (a
database of its own is made and dropped); skipped with a note when it can't be reached.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import random
import re
import secrets
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

POSTGRES_ADMIN_URL = os.environ.get("CALLABLE_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
ACCOUNT = "AC" + "1f" * 16
TOKEN = "bench-auth-token-value"
SENDER = "whatsapp:+14155238886"
PUBLIC = "https://bot.example.com"
PASSWORD = "a long enough bench password"
NAMES = ["Ana", "Bo", "Chen", "Dara", "Eli", "Femi", "Gus", "Hana", "Ivo", "Jun"]
WORDS = "cake bread order tomorrow wedding gluten croissant pickup delivery price open close birthday sourdough".split()


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def figures(samples: list[float]) -> str:
    return f"p50 {pct(samples, 0.5):7.2f} ms   p95 {pct(samples, 0.95):7.2f} ms   (n={len(samples)})"


def settings_for(data_dir: Path, database_url: str | None, twilio_url: str) -> Any:
    from callable_agents.core.config import Settings

    values: dict[str, Any] = {
        "data_dir": data_dir, "master_key": base64.b64encode(secrets.token_bytes(32)).decode(),
        "disable_plugin_autoload": True, "run_worker": True, "public_base_url": PUBLIC,
        # The replies go to the fake Twilio, which accepts them as Twilio does: a Twilio that
        # refuses every send would have the worker retrying sends instead of filing messages.
        "twilio_api_base_url": twilio_url, "twilio_messaging_base_url": twilio_url,
    }
    if database_url:
        values["database_url"] = database_url
    return Settings(_env_file=None, **values)  # type: ignore[call-arg, arg-type]


async def prepare(settings: Any) -> tuple[str, str, str]:
    """The workspace, its WhatsApp channel (fake Twilio account) and an owner; returns their ids and e-mail."""
    from callable_agents.core.bootstrap import close_runtime, open_runtime
    from callable_agents.core.models import Agent
    from callable_agents.core.store.channels import create_or_update_channel
    from callable_agents.core.store.integrations import connect_integration
    from callable_agents.core.store.users import create_user, hash_password
    from callable_agents.core.store.workspaces import create_workspace

    runtime = await open_runtime(settings, migrate=True)
    try:
        async with runtime.db.session() as session:
            workspace = await create_workspace(session, runtime.vault, f"Bench {secrets.token_hex(3)}")
            await connect_integration(
                session, runtime.vault, workspace, provider="twilio", name="twilio",
                public={"account_sid": ACCOUNT}, secrets={"auth_token": TOKEN},
            )
            session.add(Agent(workspace_id=workspace.id, name="assistant", kind="chat", system_prompt="You help."))
            await session.flush()
            channel, _ = await create_or_update_channel(
                session, runtime, workspace.id, name="whatsapp", kind="whatsapp", agent="assistant",
                integration="twilio", config={"sender": SENDER},
            )
            await create_user(session, workspace.id, email="owner@bench.example", name="Owner", role="owner", password_hash=hash_password(PASSWORD))
            return workspace.id, channel.id, "owner@bench.example"
    finally:
        await close_runtime(runtime)


def seed_conversations(workspace_id: str, channel_id: str, conversations: int) -> list[tuple[Any, ...]]:
    start = datetime.now(timezone.utc) - timedelta(days=60)
    convs: list[tuple[Any, ...]] = []
    for n in range(conversations):
        at = start + timedelta(seconds=n * 50)
        status = "human" if n % 20 == 0 else ("closed" if n % 7 == 0 else "bot")
        profile = json.dumps({"ProfileName": f"{NAMES[n % len(NAMES)]} {n}", "WaId": f"1555{n:07d}"})
        convs.append((secrets.token_hex(16), workspace_id, channel_id, f"whatsapp:+1555{n:07d}", status, "wants a person" if status == "human" else None, profile, False, at, at, at))
    return convs


def seed_messages(workspace_id: str, channel_id: str, convs: list[tuple[Any, ...]], messages: int) -> Iterator[tuple[Any, ...]]:
    """The messages, made as they are inserted (a million rows never sit in memory at once)."""
    rng = random.Random(7)
    texts = [" ".join(rng.choice(WORDS) for _ in range(8)) for _ in range(997)]
    per = max(1, messages // max(1, len(convs)))
    for index in range(messages):
        conv = convs[(index // per) % len(convs)]
        at = conv[9] - timedelta(seconds=per - index % per)
        inbound = index % 2 == 0
        text = texts[index % len(texts)]
        yield (workspace_id, conv[0], channel_id, "inbound" if inbound else "outbound", "customer" if inbound else "agent", text, "[]", "{}", "received" if inbound else "read", at, at)


CONV_COLUMNS = "id, workspace_id, channel_id, external_user_id, status, handoff_reason, profile, opted_out, last_inbound_at, created_at, updated_at"
MSG_COLUMNS = "workspace_id, conversation_id, channel_id, direction, author, text, media, meta, status, created_at, updated_at"


def stamp(value: Any) -> Any:
    return value.isoformat(" ", "microseconds")[:26] if isinstance(value, datetime) else value


def seed_sqlite(path: Path, convs: list[tuple[Any, ...]], msgs: Iterable[tuple[Any, ...]]) -> None:
    connection = sqlite3.connect(path)
    try:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.executemany(f"INSERT INTO conversations ({CONV_COLUMNS}) VALUES ({', '.join('?' * 11)})", [tuple(stamp(v) for v in row) for row in convs])
        connection.executemany(f"INSERT INTO messages ({MSG_COLUMNS}) VALUES ({', '.join('?' * 11)})", (tuple(stamp(v) for v in row) for row in msgs))
        connection.commit()
        connection.execute("ANALYZE")
    finally:
        connection.close()


def seed_postgres(url: str, convs: list[tuple[Any, ...]], msgs: Iterable[tuple[Any, ...]]) -> None:
    import psycopg

    with psycopg.connect(url) as connection:
        with connection.cursor() as cursor:
            with cursor.copy(f"COPY conversations ({CONV_COLUMNS}) FROM STDIN") as copy:
                for row in convs:
                    copy.write_row(row)
            with cursor.copy(f"COPY messages ({MSG_COLUMNS}) FROM STDIN") as copy:
                for row in msgs:
                    copy.write_row(row)
        connection.commit()
        connection.execute("ANALYZE")


async def signed_in(client: httpx.AsyncClient, email: str) -> None:
    page = await client.get("/dashboard/sign-in")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token, page.text[:300]
    answer = await client.post("/dashboard/sign-in", data={"csrf_token": token.group(1), "email": email, "password": PASSWORD, "next": "/dashboard"})
    assert answer.status_code == 303, answer.text[:300]


async def timed(call: Callable[[], Awaitable[httpx.Response]], count: int) -> list[float]:
    samples: list[float] = []
    for _ in range(count):
        began = time.perf_counter()
        response = await call()
        samples.append((time.perf_counter() - began) * 1000)
        assert response.status_code == 200, response.text[:300]
    return samples


def baseline_app() -> Any:
    import jinja2
    from starlette.applications import Starlette
    from starlette.responses import HTMLResponse
    from starlette.routing import Route

    environment = jinja2.Environment(autoescape=True)
    template = environment.from_string(
        "<!doctype html><html><body><ul>{% for row in rows %}<li id='c-{{ row.id }}'><a href='/c/{{ row.id }}'>{{ row.name }} {{ row.number }}</a>"
        "<span>{{ row.channel }}</span><span>{{ row.preview }}</span><span>{{ row.status }}</span><span>{{ row.unread }}</span></li>{% endfor %}</ul></body></html>"
    )
    rows = [{"id": secrets.token_hex(16), "name": f"Ana {n}", "number": f"+1555{n:07d}", "channel": "whatsapp", "preview": "cake bread order " * 5, "status": "bot", "unread": n % 3} for n in range(50)]

    async def page(request: Any) -> HTMLResponse:
        return HTMLResponse(template.render(rows=rows))

    return Starlette(routes=[Route("/", page)])


async def measure_lists(settings: Any, email: str, channel_id: str, renders: int) -> dict[str, list[float]]:
    from callable_agents.server import create_app

    settings = settings.model_copy(update={"run_worker": False})
    app = create_app(settings)
    results: dict[str, list[float]] = {}
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench") as client:
            await signed_in(client, email)
            first = await client.get("/dashboard/conversations")
            deep = re.search(r'href="(/dashboard/conversations\?before=[^"]+)"', first.text)
            cases = {
                "list, first page": ("/dashboard/conversations", renders),
                "list, status=person": ("/dashboard/conversations?status=human", renders),
                "list, one channel": (f"/dashboard/conversations?channel={channel_id}", renders),
                "list, next page": (deep.group(1).replace("&amp;", "&") if deep else "/dashboard/conversations", renders),
                "search a number (scans conversations)": ("/dashboard/conversations?q=%2B15550000042", max(3, renders // 10)),
                "search words (scans messages)": ("/dashboard/conversations?q=wedding+gluten", max(3, renders // 10)),
                "search words, no match (scans all)": ("/dashboard/conversations?q=zanzibar", 3),
            }
            for name, (path, count) in cases.items():
                await timed(lambda: client.get(path), 2)  # warm up
                results[name] = await timed(lambda: client.get(path), count)
    base = baseline_app()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=base), base_url="http://bench") as client:
        await timed(lambda: client.get("/"), 5)
        results["baseline: bare Starlette + Jinja2, 50 rows"] = await timed(lambda: client.get("/"), renders)
    return results


async def measure_webhook_to_screen(settings: Any, email: str, channel_id: str, webhooks: int) -> list[float]:
    import uvicorn

    from callable_agents.server import create_app
    from callable_agents.testing.twilio_signing import inbound_params, signed_headers

    app = create_app(settings)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on", access_log=False))
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)
    base = f"http://127.0.0.1:{port}"
    path = f"/channels/whatsapp/{channel_id}/inbound"
    samples: list[float] = []
    answered: list[float] = []
    try:
        async with httpx.AsyncClient(base_url=base, timeout=30) as client, httpx.AsyncClient(base_url=base, timeout=30) as twilio:
            await signed_in(client, email)
            async with client.stream("GET", "/dashboard/conversations/events") as stream:
                assert stream.status_code == 200 and stream.headers["content-type"].startswith("text/event-stream"), stream.status_code
                lines = stream.aiter_lines()
                await lines.__anext__()  # retry:
                for n in range(webhooks):
                    # A new customer each time: their row's first event is their message showing
                    # (by then the preview may already be the agent's answer).
                    marker = f"+1666{n:07d}"
                    params = inbound_params(ACCOUNT, f"whatsapp:{marker}", SENDER, f"hello number {n}", None)
                    began = time.perf_counter()
                    answer = await twilio.post(path, data=params, headers=signed_headers(TOKEN, PUBLIC + path, params))
                    assert answer.status_code == 200, answer.text
                    answered.append((time.perf_counter() - began) * 1000)
                    while True:
                        line = await asyncio.wait_for(lines.__anext__(), 10)
                        if os.environ.get("BENCH_DEBUG"):
                            print("  stream:", line[:160])
                        if line.startswith("data:") and marker in line:
                            samples.append((time.perf_counter() - began) * 1000)
                            break
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 15)
        sock.close()
    print(f"  {'webhook answered (Twilio gets its 200)':45s} {figures(answered)}")
    return samples


def fresh_postgres() -> tuple[str, Callable[[], None]] | None:
    try:
        import psycopg

        name = f"bench_inbox_{secrets.token_hex(4)}"
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=3) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
    except Exception as exc:  # noqa: BLE001 - reported, then skipped
        print(f"PostgreSQL: skipped ({type(exc).__name__}: {exc})")
        return None

    def drop() -> None:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}", drop


async def run_backend(backend: str, args: argparse.Namespace, directory: Path, twilio_url: str) -> None:
    data_dir = directory / backend
    data_dir.mkdir()
    drop: Callable[[], None] | None = None
    database_url: str | None = None
    if backend == "postgresql":
        made = fresh_postgres()
        if made is None:
            return
        database_url, drop = made
    try:
        settings = settings_for(data_dir, database_url, twilio_url)
        workspace_id, channel_id, email = await prepare(settings)
        began = time.perf_counter()
        convs = seed_conversations(workspace_id, channel_id, args.conversations)
        msgs = seed_messages(workspace_id, channel_id, convs, args.messages)
        if backend == "sqlite":
            seed_sqlite(data_dir / "callable.db", convs, msgs)
        else:
            assert database_url is not None
            seed_postgres(database_url, convs, msgs)
        print(f"\n{backend}: seeded {len(convs):,} conversations and {args.messages:,} messages in {time.perf_counter() - began:.1f} s")
        for name, samples in (await measure_lists(settings, email, channel_id, args.renders)).items():
            print(f"  {name:45s} {figures(samples)}")
        if backend == "sqlite" and args.webhooks:
            samples = await measure_webhook_to_screen(settings, email, channel_id, args.webhooks)
            print(f"  {'webhook to screen (open inbox stream)':45s} {figures(samples)}")
    finally:
        if drop is not None:
            drop()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--conversations", type=int, default=100_000)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--backends", default="sqlite,postgresql", help="comma-separated: sqlite, postgresql")
    parser.add_argument("--renders", type=int, default=200, help="requests per list case")
    parser.add_argument("--webhooks", type=int, default=100, help="webhooks timed to the open inbox (SQLite)")
    args = parser.parse_args()
    print(
        f"settings: {args.conversations:,} conversations, {args.messages:,} messages, {args.renders} renders a case, "
        f"{args.webhooks} webhooks; page of 50 rows; one process (ASGI in-process for renders, uvicorn on loopback "
        f"for webhooks, worker on, replies to the fake Twilio); python {sys.version.split()[0]}"
    )
    print("targets: list p95 < 100 ms; webhook to screen p50 < 100 ms")
    from callable_agents.testing.twilio_server import FakeTwilio

    with tempfile.TemporaryDirectory(prefix="bench-inbox-") as directory, FakeTwilio() as twilio:
        twilio.add_account(ACCOUNT, TOKEN)
        for backend in [b.strip() for b in args.backends.split(",") if b.strip()]:
            if backend not in ("sqlite", "postgresql"):
                parser.error(f"--backends: expected sqlite or postgresql, got {backend!r}")
            await run_backend(backend, args, Path(directory), twilio.base_url)


if __name__ == "__main__":
    asyncio.run(main())
