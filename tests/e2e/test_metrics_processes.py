"""Metrics across processes: a ``callable serve`` (worker off) and a ``callable worker`` on
PostgreSQL share one metrics port and one ``PROMETHEUS_MULTIPROC_DIR``; every scrape, whichever
process answers it, shows the counters both moved."""

from __future__ import annotations

from pathlib import Path

import httpx

from callable_agents.core.observability.metrics import sample_value
from callable_agents.testing.openai_server import FakeOpenAI
from callable_agents.testing.twilio_server import FakeTwilio
from callable_agents.testing.twilio_signing import inbound_params, signed_headers
from tests.cli.helpers import free_port
from tests.e2e.conftest import prepare
from tests.e2e.processes import CallableProcess, ServerProcess, process_env, sent_to, wait_until
from tests.e2e.whatsapp_support import ACCOUNT, PUBLIC_BASE_URL, SENDER, TOKEN

CUSTOMERS = ["whatsapp:+15556000001", "whatsapp:+15556000002"]


def test_one_port_reports_the_counters_of_every_process(
    tmp_path: Path, fresh_postgres_url: str, twilio: FakeTwilio, openai: FakeOpenAI
) -> None:
    settings, world = prepare(tmp_path, twilio, openai, database_url=fresh_postgres_url, coalesce_seconds=0.1)
    directory = tmp_path / "prometheus"
    directory.mkdir()
    metrics_port = free_port()
    env = process_env(settings, PROMETHEUS_MULTIPROC_DIR=str(directory), CALLABLE_METRICS_PORT=str(metrics_port))
    server = ServerProcess({**env, "CALLABLE_RUN_WORKER": "false"}, tmp_path / "server.log", free_port())
    worker = CallableProcess(["worker"], env, tmp_path / "worker.log")
    logs = lambda: f"{server.log[-3000:]}\n--- worker ---\n{worker.log[-3000:]}"  # noqa: E731
    try:
        server.start_and_wait()
        worker.start()
        wait_until(lambda: " running" in worker.log, timeout=60, what="the worker to start", log=logs)
        url = f"{server.url}/channels/whatsapp/{world.channel.id}/inbound"
        public_url = f"{PUBLIC_BASE_URL}/channels/whatsapp/{world.channel.id}/inbound"
        for customer in CUSTOMERS:
            params = inbound_params(ACCOUNT, customer, SENDER, "When do you open?")
            assert httpx.post(url, data=params, headers=signed_headers(TOKEN, public_url, params), timeout=10).status_code == 200
        wait_until(lambda: all(sent_to(twilio.sent_messages, c) for c in CUSTOMERS), timeout=60, what="both replies", log=logs)

        def scrape() -> str:
            response = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10)
            assert response.status_code == 200
            return response.text

        def both_counted() -> str | None:
            text = scrape()
            turns = sample_value(text, "callable_jobs_finished_total", {"kind": "turn", "outcome": "done"})
            return text if turns == len(CUSTOMERS) else None

        text = wait_until(both_counted, timeout=20, what="the worker's turns in a scrape", log=logs)
        for text in [text, *(scrape() for _ in range(6))]:  # whichever process answers
            # Counted by the web process ...
            assert sample_value(text, "callable_webhooks_total", {"channel": "whatsapp", "outcome": "queued"}) == 2
            # ... and by the worker process.
            assert sample_value(text, "callable_jobs_finished_total", {"kind": "turn", "outcome": "done"}) == 2
            assert sample_value(text, "callable_sends_total", {"channel": "whatsapp", "status": "queued"}) == 2
            assert sample_value(text, "callable_inbound_queue_depth") == 0
        assert httpx.get(f"{server.url}/metrics", timeout=10).status_code == 404  # not on the public port
    finally:
        worker.stop()
        server.stop()


def test_a_taken_metrics_port_without_a_multiprocess_directory_stops_the_worker(
    tmp_path: Path, twilio: FakeTwilio, openai: FakeOpenAI
) -> None:
    import socket

    settings, _world = prepare(tmp_path, twilio, openai)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = process_env(settings, CALLABLE_METRICS_PORT=str(port))
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        worker = CallableProcess(["worker"], env, tmp_path / "worker.log").start()
        assert worker.process is not None
        assert worker.process.wait(timeout=90) != 0
    assert f"CALLABLE_METRICS_PORT: cannot listen on 127.0.0.1:{port}" in worker.log
    assert "PROMETHEUS_MULTIPROC_DIR" in worker.log
