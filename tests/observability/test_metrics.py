"""``/metrics``: the counters the pipeline moves, served only where the operator said, and
added up across processes with ``PROMETHEUS_MULTIPROC_DIR``."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import update

from callable_agents.core.config import load_settings
from callable_agents.core.errors import ConfigError
from callable_agents.core.models import Job
from callable_agents.core.observability.metrics import render_metrics, sample_value
from callable_agents.server import create_app
from tests.cli.helpers import free_port
from tests.e2e.whatsapp_support import serving, sqlite_settings
from tests.observability.support import HANDOFF_TOOL, METRICS_TOKEN, Served, served


def value(exposition: str, name: str, **labels: str) -> float:
    return sample_value(exposition, name, labels) or 0.0


async def test_a_webhook_turn_and_send_move_their_counters(tmp_path: Path) -> None:
    async with served(tmp_path, tools=[HANDOFF_TOOL]) as env:
        before = await env.metrics()
        customer, other = "whatsapp:+15550001111", "whatsapp:+15550002222"
        env.openai.queue_reply("We open at 7:00.")
        sid = "SM" + "a1" * 16
        assert (await env.webhook("When do you open?", customer=customer, sid=sid)).status_code == 200
        await env.replies_to(customer, 1)
        assert (await env.webhook("When do you open?", customer=customer, sid=sid)).status_code == 200  # Twilio retried
        assert (await env.webhook("forged", customer=customer, token="not-the-token")).status_code == 403
        env.openai.queue_tool_call("talk_to_a_person", {"reason": "wants a person"})
        assert (await env.webhook("A person please", customer=other)).status_code == 200
        [handoff_notice] = await env.replies_to(other, 1)
        assert (await env.status_callback(handoff_notice["sid"], "undelivered", ErrorCode="63016")).status_code == 200
        after = await _settled_metrics(env, before)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("callable_webhooks_total", channel="whatsapp", outcome="queued") == 3
    assert moved("callable_webhooks_total", channel="whatsapp", outcome="rejected") == 1
    assert moved("callable_inbound_duplicates_total", channel="whatsapp") == 1
    assert moved("callable_jobs_finished_total", kind="turn", outcome="done") == 2
    assert moved("callable_jobs_finished_total", kind="send", outcome="done") == 2
    assert moved("callable_turn_duration_seconds_count", channel="whatsapp", outcome="answered") == 1
    assert moved("callable_turn_duration_seconds_count", channel="whatsapp", outcome="handed_off") == 1
    # The answer; the handoff turn's tool call, then its model call after the tool.
    assert moved("callable_model_duration_seconds_count", model="gpt-4o-mini", outcome="ok") == 3
    assert moved("callable_model_tokens_total", agent="assistant", model="gpt-4o-mini", type="prompt") > 0
    assert moved("callable_model_tokens_total", agent="assistant", model="gpt-4o-mini", type="completion") > 0
    assert moved("callable_tool_calls_total", tool="talk_to_a_person", outcome="ok") == 1
    assert moved("callable_sends_total", channel="whatsapp", status="queued") == 2  # Twilio's first status
    assert moved("callable_handoffs_total", by="agent") == 1
    assert moved("callable_provider_errors_total", channel="whatsapp", code="63016") == 1
    # Read from the database when scraped: everything filed and done by now.
    assert value(after, "callable_inbound_queue_depth") == 0
    assert value(after, "callable_jobs", kind="turn", state="pending") == 0
    # Low cardinality: no conversation, message or customer id in any label.
    assert "+1555000" not in after and sid not in after


async def _settled_metrics(env: Served, before: str) -> str:
    """The exposition once both sends were counted (the turn's own sends finish after Twilio answered)."""
    for _ in range(100):
        text = await env.metrics()
        if value(text, "callable_jobs_finished_total", kind="send", outcome="done") - value(
            before, "callable_jobs_finished_total", kind="send", outcome="done"
        ) >= 2:
            return text
        await asyncio.sleep(0.05)
    return text


async def test_backlog_gauges_show_what_waits_and_for_how_long(tmp_path: Path) -> None:
    async with served(tmp_path, run_worker=False) as env:
        for n in range(3):
            assert (await env.webhook(f"hello {n}", customer="whatsapp:+15550003333")).status_code == 200
        await asyncio.sleep(0.3)
        text = await env.metrics()
        assert value(text, "callable_inbound_queue_depth") == 3
        assert value(text, "callable_inbound_queue_oldest_age_seconds") >= 0.25
        async with env.runtime.db.session() as session:  # a failed job stays counted until cleared
            session.add(Job(workspace_id=env.world.workspace.id, kind="send", payload={}, status="failed"))
        from callable_agents.core.conversation.inbound.filing import file_queued

        await file_queued(env.runtime)
        text = await env.metrics()
        assert value(text, "callable_inbound_queue_depth") == 0
        assert value(text, "callable_jobs", kind="turn", state="pending") == 1  # one conversation, one turn
        assert value(text, "callable_jobs", kind="send", state="failed") == 1
        async with env.runtime.db.session() as session:
            await session.execute(update(Job).where(Job.kind == "turn").values(status="running"))
        text = await env.metrics()
        assert value(text, "callable_jobs", kind="turn", state="running") == 1


async def test_metrics_are_not_public_by_default(tmp_path: Path) -> None:
    app = create_app(sqlite_settings(tmp_path))
    async with serving(app) as client:
        response = await client.get("/metrics")
        assert response.status_code == 404
        assert "callable_" not in response.text


async def test_the_token_is_required_when_set(tmp_path: Path) -> None:
    async with served(tmp_path) as env:
        for headers in ({}, {"Authorization": "Bearer wrong-token-0123456789"}, {"Authorization": METRICS_TOKEN}):
            response = await env.client.get("/metrics", headers=headers)
            assert response.status_code == 401
            assert response.headers["www-authenticate"] == "Bearer"
            assert "Authorization: Bearer <CALLABLE_METRICS_TOKEN>" in response.text
        assert "# TYPE callable_webhooks_total counter" in await env.metrics()


def test_a_short_token_is_refused_naming_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings(data_dir=tmp_path, metrics_token="short")
    assert "CALLABLE_METRICS_TOKEN" in str(raised.value) and "16 characters" in str(raised.value)
    assert "short" not in str(raised.value)  # a secret is not echoed


async def test_the_metrics_port_answers_metrics_only(tmp_path: Path) -> None:
    port = free_port()
    async with served(tmp_path, metrics_port=port, metrics_token=None):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = (await reader.read()).decode()
        writer.close()
        assert answer.startswith("HTTP/1.1 200 OK")
        assert "callable_inbound_queue_depth" in answer
        for request, status in ((b"GET / HTTP/1.1\r\n\r\n", "404"), (b"POST /metrics HTTP/1.1\r\n\r\n", "405"), (b"junk", "400")):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(request)
            if request == b"junk":
                writer.write_eof()
            answer = (await reader.read()).decode()
            writer.close()
            assert answer.startswith(f"HTTP/1.1 {status}"), answer


async def test_the_metrics_port_asks_for_the_token_when_one_is_set(tmp_path: Path) -> None:
    port = free_port()
    async with served(tmp_path, metrics_port=port):
        for authorization, status in ((b"", "401"), (f"Authorization: Bearer {METRICS_TOKEN}\r\n".encode(), "200")):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /metrics HTTP/1.1\r\n" + authorization + b"\r\n")
            answer = (await reader.read()).decode()
            writer.close()
            assert answer.startswith(f"HTTP/1.1 {status}"), answer


_COUNT_IN_A_PROCESS = """
from callable_agents.core.observability.metrics import count_webhook, observe_turn
for _ in range({n}):
    count_webhook("whatsapp", "queued")
observe_turn("whatsapp", "answered", 0.3)
"""


def test_processes_sharing_a_multiprocess_directory_are_added_up(tmp_path: Path) -> None:
    directory = tmp_path / "prometheus"
    directory.mkdir()
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory), "PYTHONPATH": str(Path.cwd())}
    for n in (2, 5):
        subprocess.run([sys.executable, "-c", _COUNT_IN_A_PROCESS.format(n=n)], env=env, check=True, timeout=60)
    exposition = subprocess.run(
        [sys.executable, "-c", "import sys; from callable_agents.core.observability.metrics import render_metrics; "
         "sys.stdout.write(render_metrics(None).decode())"],
        env=env, check=True, timeout=60, capture_output=True, text=True,
    ).stdout
    assert value(exposition, "callable_webhooks_total", channel="whatsapp", outcome="queued") == 7
    assert value(exposition, "callable_turn_duration_seconds_count", channel="whatsapp", outcome="answered") == 2
