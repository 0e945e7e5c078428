"""The database goes away and comes back: nothing accepted is lost or answered twice.

A ``callable serve`` process (worker off) and a ``callable worker`` process reach PostgreSQL
through a TCP proxy the test cuts and restores. While it is cut, the webhook answers 503
(Twilio retries) instead of acknowledging what it could not store; the processes reconnect
by themselves once it is back. Every message sent before, during (retried by the client
until accepted) and after the cut is answered exactly once.
"""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from callable_agents.testing.openai_server import FakeOpenAI
from callable_agents.testing.twilio_server import FakeTwilio
from callable_agents.testing.twilio_signing import inbound_params, new_message_sid, signed_headers
from tests.cli.helpers import free_port
from tests.e2e.conftest import prepare
from tests.e2e.cuttable_proxy import CuttableProxy
from tests.e2e.processes import CallableProcess, ServerProcess, process_env, sent_to, wait_until
from tests.e2e.test_whatsapp_workers import acknowledged
from tests.e2e.whatsapp_support import ACCOUNT, PUBLIC_BASE_URL, SENDER, TOKEN

CUSTOMERS = [f"whatsapp:+1555400{n:04d}" for n in range(4)]
OUTAGE_SECONDS = 4.0


def test_messages_before_during_and_after_a_database_outage_are_answered_exactly_once(
    tmp_path: Path, fresh_postgres_url: str, twilio: FakeTwilio, openai: FakeOpenAI
) -> None:
    settings, world = prepare(tmp_path, twilio, openai, database_url=fresh_postgres_url, coalesce_seconds=0.2)
    database = urlsplit(fresh_postgres_url)
    proxy = CuttableProxy(database.hostname or "127.0.0.1", database.port or 5432).start()
    proxied_url = fresh_postgres_url.replace(f"{database.hostname}:{database.port or 5432}", f"127.0.0.1:{proxy.port}", 1)
    assert proxied_url != fresh_postgres_url
    env = process_env(
        settings,
        CALLABLE_DATABASE_URL=proxied_url,
        CALLABLE_JOB_LEASE_SECONDS="3",
        CALLABLE_TWILIO_SEND_SETTLE_SECONDS="2",
    )
    server = ServerProcess({**env, "CALLABLE_RUN_WORKER": "false"}, tmp_path / "server.log", free_port())
    worker = CallableProcess(["worker", "--concurrency", "4"], env, tmp_path / "worker.log")
    inbound_url = f"{server.url}/channels/whatsapp/{world.channel.id}/inbound"
    public_url = f"{PUBLIC_BASE_URL}/channels/whatsapp/{world.channel.id}/inbound"
    expected = {customer: [] for customer in CUSTOMERS}  # type: dict[str, list[str]]
    logs = lambda: f"{server.log[-4000:]}\n--- worker ---\n{worker.log[-4000:]}"  # noqa: E731

    def post(client: httpx.Client, customer: str, text: str, sid: str) -> int:
        params = inbound_params(ACCOUNT, customer, SENDER, text, sid)
        try:
            return client.post(inbound_url, data=params, headers=signed_headers(TOKEN, public_url, params)).status_code
        except httpx.TransportError:
            return 0

    try:
        server.start_and_wait()
        worker.start()
        wait_until(lambda: " running" in worker.log, timeout=60, what="the worker to start", log=logs)
        with httpx.Client(timeout=15) as client:
            for customer in CUSTOMERS:  # before
                text = f"before {customer[-2:]}"
                assert post(client, customer, text, new_message_sid()) == 200
                expected[customer].append(text)
            time.sleep(0.3)  # some turns under way when the database goes

            proxy.cut()
            during = {customer: (f"during {customer[-2:]}", new_message_sid()) for customer in CUSTOMERS}
            refused: list[int] = []
            deadline = time.monotonic() + OUTAGE_SECONDS
            while time.monotonic() < deadline:
                for customer, (text, sid) in during.items():
                    status = post(client, customer, text, sid)
                    assert status != 200, "a message was acknowledged while the database was unreachable"
                    refused.append(status)
                time.sleep(0.3)
            assert refused and all(500 <= status < 600 for status in refused), refused
            proxy.restore()

            for customer, (text, sid) in during.items():  # the client retries, as Twilio does
                wait_until(lambda: post(client, customer, text, sid) == 200, timeout=30, interval=0.3,
                           what=f"{customer}'s retried message to be accepted", log=logs)
                expected[customer].append(text)
            for customer in CUSTOMERS:  # after
                text = f"after {customer[-2:]}"
                assert post(client, customer, text, new_message_sid()) == 200
                expected[customer].append(text)

        def all_answered() -> bool:
            return all(len(acknowledged(sent_to(twilio.sent_messages, c))) >= len(expected[c]) for c in CUSTOMERS)

        wait_until(all_answered, timeout=90, what="every message to be answered", interval=0.25, log=logs)
        time.sleep(4)  # a lease expiring late would answer again now
        for customer in CUSTOMERS:
            assert sorted(acknowledged(sent_to(twilio.sent_messages, customer))) == sorted(expected[customer]), logs()
        assert httpx.get(f"{server.url}/readyz", timeout=5).status_code == 200
        assert worker.process is not None and worker.process.poll() is None  # reconnected, still running
        assert "OperationalError" in worker.log  # it did lose the database meanwhile
        assert "Exception in ASGI application" not in server.log  # a 503, not a crash of the request
    finally:
        worker.stop()
        server.stop()
        proxy.close()
