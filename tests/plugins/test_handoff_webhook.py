"""Handoff webhooks: signed JSON delivered by a durable job, retried on 5xx."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from callable_agents.core.bootstrap import close_runtime, open_runtime
from callable_agents.core.store.integrations import connect_integration
from callable_agents.core.models import Conversation, Job, Workspace
from callable_agents.plugins.handoff.webhook import SIGNATURE_HEADER, sign_payload, verify_signature
from tests.conftest import make_settings
from tests.core.pipeline_helpers import drain, make_agent_channel, outbound, say
from callable_agents.testing.openai_server import FakeOpenAI

SIGNING_SECRET = "whsec_test_5f1d8a"


class Receiver:
    """A loopback webhook receiver that fails its first ``failures`` deliveries."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.received: list[tuple[dict[str, str], bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.received.append((dict(self.headers), body))
                status = 503 if receiver.failures > 0 else 204
                receiver.failures -= 1
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/handoff"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver(failures=1)
    yield server
    server.server.shutdown()


def test_signature_round_trip_and_rejections() -> None:
    body = b'{"event":"x"}'
    header = sign_payload(b"k", body, 1_700_000_000)
    assert verify_signature(b"k", body, header, now=1_700_000_100)
    assert not verify_signature(b"k", body + b" ", header, now=1_700_000_100)
    assert not verify_signature(b"other", body, header, now=1_700_000_100)
    assert not verify_signature(b"k", body, header, now=1_700_001_000)  # too old: a replay
    assert not verify_signature(b"k", body, "garbage", now=1_700_000_100)


async def test_handoff_webhook_is_signed_and_retried(tmp_path: Path, receiver: Receiver) -> None:
    runtime = await open_runtime(make_settings(tmp_path / "data"), migrate=True)
    try:
        with FakeOpenAI(api_key="sk-hooks") as fake:
            tool = {
                "type": "handoff",
                "name": "handoff",
                "config": {"webhook_url": receiver.url, "webhook_secret": {"integration": "crm", "field": "signing_secret"}},
            }
            agent, channel = await make_agent_channel(
                runtime, tools=[tool], model_settings={"integration": "openai-main", "model": "gpt-test", "max_retries": 0}
            )
            async with runtime.db.session() as session:
                workspace = await session.get(Workspace, agent.workspace_id)
                assert workspace is not None
                await connect_integration(session, runtime.vault, workspace, provider="openai", name="openai-main",
                                          public={"base_url": fake.base_url}, secrets={"api_key": "sk-hooks"})
                await connect_integration(session, runtime.vault, workspace, provider="http", name="crm",
                                          public={}, secrets={"signing_secret": SIGNING_SECRET})
            fake.queue_tool_call("handoff", {"reason": "Refund over 100 euros"})
            fake.queue_reply("I've passed you to a colleague, who will reply shortly.")
            accepted = await say(runtime, channel, "I want a refund for my wedding cake")
            await drain(runtime)
            # The first delivery got 503; after its backoff the job delivered it again.
            async with runtime.db.session() as session:
                job = (await session.execute(Job.__table__.select().where(Job.kind == "webhook"))).one()
            assert (job.status, job.attempts) == ("done", 2)
            assert len(receiver.received) == 2
            headers, body = receiver.received[-1]
            assert verify_signature(SIGNING_SECRET.encode(), body, headers[SIGNATURE_HEADER], now=time.time())
            payload = json.loads(body)
            assert payload["event"] == "conversation.handed_off"
            assert payload["conversation_id"] == accepted.conversation_id
            assert payload["reason"] == "Refund over 100 euros"
            # The customer gets the handoff notice once, not the model's paraphrase too.
            replies = await outbound(runtime, accepted.conversation_id)
            assert [m.author for m in replies] == ["system"]
            async with runtime.db.session() as session:
                conversation = await session.get(Conversation, accepted.conversation_id)
                assert conversation is not None and conversation.status == "human"
            assert SIGNING_SECRET not in body.decode()
    finally:
        await close_runtime(runtime)


async def test_a_webhook_to_a_private_address_is_refused_without_the_setting(tmp_path: Path, receiver: Receiver) -> None:
    runtime = await open_runtime(
        make_settings(tmp_path / "data", allow_private_urls=False), migrate=True
    )
    try:
        tool = {"type": "handoff", "name": "handoff", "config": {"webhook_url": receiver.url,
                "webhook_secret": {"integration": "crm", "field": "signing_secret"}}}
        agent, channel = await make_agent_channel(runtime, tools=[tool])
        async with runtime.db.session() as session:
            workspace = await session.get(Workspace, agent.workspace_id)
            assert workspace is not None
            await connect_integration(session, runtime.vault, workspace, provider="http", name="crm",
                                      public={}, secrets={"signing_secret": SIGNING_SECRET})
        await say(runtime, channel, "I want to talk to a person")  # offline mode hands off
        await drain(runtime)
        async with runtime.db.session() as session:
            job = (await session.execute(Job.__table__.select().where(Job.kind == "webhook"))).one()
        assert job.status == "failed" and "refused" in job.last_error
        assert receiver.received == []
    finally:
        await close_runtime(runtime)
