"""Benchmark: dashboard page render times with a large workspace, beside a bare Starlette Jinja2 page.

    .venv/bin/python bench/dashboard.py [--agents 200] [--sources 1000] [--requests 200]

Both servers run as separate processes with the same uvicorn settings, on loopback:

1. **bare**: a Starlette endpoint rendering a Jinja2 template of a table with as many rows as
   the largest dashboard list (the floor: what any server-rendered Starlette page costs);
2. **dashboard**: ``callable serve`` at its default settings (worker on, SQLite) on a workspace
   seeded with ``--agents`` agents and ``--sources`` knowledge sources (one knowledge base,
   ready and failed ones mixed) and a few channels, signed in as its owner through the
   sign-in form.

Each page is requested ``--requests`` times one after another (a person clicking, not a
load test) after a warm-up; p50 and p95 are of the whole request as the client sees it.
Target (issue 14): p95 under 50 ms for the agents, knowledge (the list, and the knowledge base's page
with its sources) and channels pages. Prints the
settings and a table; exits 1 only when a request failed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from bench.processes import free_port, stop, wait_ready  # noqa: E402
from bench.settings_line import from_environment, settings_line  # noqa: E402

PASSWORD = "bench password 123"
PAGES = ("/dashboard/agents", "/dashboard/knowledge", "/dashboard/channels")
TARGET_P95_MS = 50.0

BARE_APP = '''
import jinja2
from starlette.applications import Starlette
from starlette.responses import HTMLResponse
from starlette.routing import Route

ROWS = [{"name": f"source-{i}.html", "status": "ready" if i % 7 else "failed", "chunks": i % 40} for i in range(ROW_COUNT)]
TEMPLATE = jinja2.Environment(autoescape=True).from_string(
    "<!doctype html><html><head><title>bare</title></head><body><table>"
    "{% for row in rows %}<tr><td>{{ row.name }}</td><td>{{ row.status }}</td><td>{{ row.chunks }}</td></tr>{% endfor %}"
    "</table></body></html>"
)

async def page(request):
    return HTMLResponse(TEMPLATE.render(rows=ROWS))

app = Starlette(routes=[Route("/page", page)])
'''


async def seed(data_dir: Path, env: dict[str, str], agents: int, sources: int) -> str:
    """The workspace, its owner, agents, one knowledge base with ``sources`` sources, channels;
    returns the knowledge base's id (its page lists the sources)."""
    os.environ.update(env)
    from sqlalchemy import insert

    from callable_agents.core.bootstrap import running
    from callable_agents.core.config import load_settings
    from callable_agents.core.knowledge.store import create_knowledge_base
    from callable_agents.core.models import Source, new_id, utcnow
    from callable_agents.core.store.agents import create_or_update_agent
    from callable_agents.core.store.channels import create_or_update_channel
    from callable_agents.core.store.users import create_user, hash_password
    from callable_agents.core.store.workspaces import create_workspace

    settings = load_settings()
    async with running(settings, migrate=True) as runtime:
        async with runtime.db.session() as session:
            workspace = await create_workspace(session, runtime.vault, "Bench Bakery", "bench")
            await create_user(session, workspace.id, email="owner@example.com", role="owner", password_hash=hash_password(PASSWORD))
            knowledge_base = await create_knowledge_base(session, workspace.id, "site", runtime=runtime)
        for index in range(agents):
            async with runtime.db.session() as session:
                await create_or_update_agent(
                    session,
                    runtime,
                    workspace.id,
                    {
                        "name": f"agent-{index:03d}",
                        "system_prompt": "You answer questions about the bakery. " * 5,
                        "business_info": {"name": "Bench Bakery", "hours": "Mon-Sat 7:00-18:00"},
                        "knowledge_bases": ["site"],
                    },
                )
        now = utcnow()
        rows = [
            {
                "id": new_id(),
                "workspace_id": workspace.id,
                "knowledge_base_id": knowledge_base.id,
                "kind": "url",
                "title": f"Page {index}",
                "location": f"https://bench.example/page-{index}.html",
                "options": {},
                "status": "failed" if index % 50 == 0 else "ready",
                "error": "HTTP 404 from the site" if index % 50 == 0 else None,
                "chunk_count": index % 40,
                "document_count": 1,
                "byte_count": 2000 + index,
                "last_indexed_at": now,
                "created_at": now,
                "updated_at": now,
            }
            for index in range(sources)
        ]
        async with runtime.db.session() as session:
            await session.execute(insert(Source), rows)
        for index, kind in enumerate(("widget", "page", "widget")):
            async with runtime.db.session() as session:
                await create_or_update_channel(
                    session,
                    runtime,
                    workspace.id,
                    name=f"{kind}-{index}",
                    kind=kind,
                    agent="agent-000",
                    slug=f"bench-{index}" if kind == "page" else None,
                )
        return knowledge_base.id


def start(command: list[str], env: dict[str, str], url: str) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wait_ready(url, process)
    return process


def sign_in(client: httpx.Client) -> None:
    page = client.get("/dashboard/sign-in")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token, "no sign-in form"
    response = client.post(
        "/dashboard/sign-in", data={"csrf_token": token.group(1), "email": "owner@example.com", "password": PASSWORD}
    )
    if response.status_code != 303:
        raise SystemExit(f"sign-in failed: {response.status_code} {response.text[:300]}")


def measure(client: httpx.Client, path: str, requests: int) -> tuple[list[float], int]:
    for _ in range(10):
        client.get(path)
    times: list[float] = []
    size = 0
    for _ in range(requests):
        started = time.perf_counter()
        response = client.get(path)
        times.append((time.perf_counter() - started) * 1000)
        if response.status_code != 200:
            raise SystemExit(f"{path}: HTTP {response.status_code}: {response.text[:300]}")
        size = len(response.content)
    return times, size


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agents", type=int, default=200)
    parser.add_argument("--sources", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="callable-bench-dashboard-") as tmp:
        data_dir = Path(tmp) / "data"
        port, bare_port = free_port(), free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("CALLABLE_")}
        env.update(CALLABLE_DATA_DIR=str(data_dir), CALLABLE_PORT=str(port), CALLABLE_LOG_LEVEL="WARNING")
        seeded = time.perf_counter()
        knowledge_base_id = asyncio.run(seed(data_dir, env, args.agents, args.sources))
        seeded = time.perf_counter() - seeded
        # The key file the seeding created is the one the server reads (same data dir).
        server = start([sys.executable, "-m", "callable_agents", "serve"], env, f"http://127.0.0.1:{port}/healthz")
        (Path(tmp) / "bare_app.py").write_text(BARE_APP.replace("ROW_COUNT", str(max(args.sources, args.agents))))
        bare = start(
            [sys.executable, "-m", "uvicorn", "bare_app:app", "--port", str(bare_port), "--log-level", "warning", "--app-dir", tmp],
            env,
            f"http://127.0.0.1:{bare_port}/page",
        )
        try:
            results: list[tuple[str, list[float], int]] = []
            with httpx.Client(base_url=f"http://127.0.0.1:{bare_port}") as client:
                times, size = measure(client, "/page", args.requests)
                results.append((f"bare Starlette + Jinja2 ({max(args.sources, args.agents)} rows)", times, size))
            with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
                sign_in(client)
                for path in (*PAGES, f"/dashboard/knowledge/{knowledge_base_id}"):
                    times, size = measure(client, path, args.requests)
                    results.append((path, times, size))
        finally:
            stop(server)
            stop(bare)

    print(
        settings_line(
            from_environment(env), reply_policy="not used (no conversations)",
            note=f"SQLite, worker on, {args.agents} agents, {args.sources} sources in one knowledge base, 3 channels; "
            f"{args.requests} sequential requests a page after 10 warm-up; seeded in {seeded:.1f}s",
        )
    )
    print(f"{'page':<48} {'p50 ms':>8} {'p95 ms':>8} {'KiB':>7}  target p95 < {TARGET_P95_MS:.0f} ms")
    for name, times, size in results:
        p50, p95 = statistics.median(times), percentile(times, 0.95)
        verdict = "" if name.startswith("bare") else ("met" if p95 < TARGET_P95_MS else "NOT met")
        print(f"{name:<48} {p50:>8.1f} {p95:>8.1f} {size / 1024:>7.1f}  {verdict}")


if __name__ == "__main__":
    main()
