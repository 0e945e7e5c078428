"""Many processes on one PostgreSQL database: two ``callable serve`` (worker off) and one
``callable worker``, with live events fanned out by LISTEN/NOTIFY or by Redis.

* A widget visitor whose event stream is held by server 1 posts through server 2 and sees the
  worker's reply token by token; a stream resumed from ``Last-Event-ID`` on the other
  server gets what followed, once.
* A limit of 5 messages a minute allows 5 in total across both servers.
* ``/metrics`` (bearer token) on each server shows the counters that moved there.
* A person taking a conversation over through server 2 stops the turn the worker is running:
  its model call is cancelled (the fake model holds its answer for 30 s) and nothing is sent.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from callable_agents.core.models import Conversation, Message, Trace
from callable_agents.core.observability.metrics import sample_value
from callable_agents.core.runtime import Runtime
from callable_agents.core.store.channels import create_or_update_channel
from callable_agents.core.store.workspaces import create_api_key
from callable_agents.testing.openai_server import FakeOpenAI, ScriptedReply
from callable_agents.testing.twilio_server import FakeTwilio
from callable_agents.testing.twilio_signing import inbound_params, signed_headers
from tests.cli.helpers import free_port
from tests.e2e.conftest import prepare, run
from tests.e2e.processes import CallableProcess, ServerProcess, process_env, sent_to, wait_until
from tests.e2e.whatsapp_support import ACCOUNT, PUBLIC_BASE_URL, SENDER, TOKEN

SHOP = "https://shop.example"
METRICS_TOKEN = "metrics-token-0123456789abcdef"
REDIS_URL = "redis://127.0.0.1:6379/0"
STREAMED = "Our sourdough rests for two days before baking, then we bake it at dawn."


@dataclass
class Fleet:
    servers: tuple[ServerProcess, ServerProcess]
    worker: CallableProcess
    widget_id: str
    limited_id: str
    api_key: str
    settings: Any
    world: Any

    def logs(self) -> str:
        parts = [f"--- {p.log_path.name} ---\n{p.log[-2500:]}" for p in (*self.servers, self.worker)]
        return "\n".join(parts)


async def _setup(runtime: Runtime, workspace_id: str) -> tuple[str, str, str]:
    async with runtime.db.session() as session:
        widget, _ = await create_or_update_channel(
            session, runtime, workspace_id, name="widget", kind="widget", agent="assistant",
            config={"allowed_origins": [SHOP]},
        )
        limited, _ = await create_or_update_channel(
            session, runtime, workspace_id, name="limited", kind="widget", agent="assistant",
            config={"allowed_origins": [SHOP], "messages_per_minute_per_visitor": 5},
        )
        _row, key = await create_api_key(session, workspace_id, "e2e")
    return widget.id, limited.id, key


@contextmanager
def fleet(tmp_path: Path, database_url: str, twilio: FakeTwilio, openai: FakeOpenAI, **extra_env: str) -> Iterator[Fleet]:
    settings, world = prepare(tmp_path, twilio, openai, database_url=database_url)
    widget_id, limited_id, api_key = run(settings, lambda runtime: _setup(runtime, world.workspace.id))
    env = process_env(settings, CALLABLE_METRICS_TOKEN=METRICS_TOKEN, **extra_env)
    web = {**env, "CALLABLE_RUN_WORKER": "false"}
    servers = (
        ServerProcess(web, tmp_path / "server1.log", free_port()),
        ServerProcess(web, tmp_path / "server2.log", free_port()),
    )
    worker = CallableProcess(["worker"], env, tmp_path / "worker.log")
    started = Fleet(servers, worker, widget_id, limited_id, api_key, settings, world)
    try:
        for server in servers:
            server.start_and_wait()
        worker.start()
        wait_until(lambda: " running" in worker.log, timeout=60, what="the worker to start", log=started.logs)
        yield started
    finally:
        worker.stop()
        for server in servers:
            server.stop()


# --------------------------------------------------------------------------- a visitor's client


def _widget(server: ServerProcess, channel_id: str, path: str) -> str:
    return f"{server.url}/channels/widget/{channel_id}/{path}"


def start_session(server: ServerProcess, channel_id: str) -> str:
    response = httpx.post(_widget(server, channel_id, "sessions"), json={}, headers={"Origin": SHOP}, timeout=10)
    assert response.status_code == 200, response.text
    return str(response.json()["token"])


def post_message(server: ServerProcess, channel_id: str, token: str, text: str) -> httpx.Response:
    return httpx.post(
        _widget(server, channel_id, "messages"), json={"text": text},
        headers={"Origin": SHOP, "Authorization": f"Bearer {token}"}, timeout=10,
    )


@dataclass
class Stream:
    """A visitor's event stream read on a thread: (arrival time, event, data, id) each."""

    events: list[tuple[float, str, dict[str, Any], str | None]] = field(default_factory=list)
    opened: threading.Event = field(default_factory=threading.Event)
    response: httpx.Response | None = None

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [data for _at, event, data, _id in self.events if event == kind]


@contextmanager
def event_stream(server: ServerProcess, channel_id: str, token: str, **headers: str) -> Iterator[Stream]:
    stream = Stream()
    client = httpx.Client(timeout=httpx.Timeout(10, read=None))

    def read() -> None:
        try:
            with client.stream(
                "GET", _widget(server, channel_id, "events"),
                headers={"Origin": SHOP, "Authorization": f"Bearer {token}", **headers},
            ) as response:
                stream.response = response
                event, data, event_id = "", "", None
                for line in response.iter_lines():
                    if line.startswith(": stream open"):
                        stream.opened.set()
                    elif line.startswith("event: "):
                        event = line[7:]
                    elif line.startswith("data: "):
                        data = line[6:]
                    elif line.startswith("id: "):
                        event_id = line[4:]
                    elif line == "" and event:
                        stream.events.append((time.monotonic(), event, json.loads(data), event_id))
                        event, data, event_id = "", "", None
        except httpx.HTTPError:
            pass  # closed by the test

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert stream.opened.wait(10), "the event stream did not open"
        yield stream
    finally:
        client.close()
        reader.join(timeout=5)


def metrics(server: ServerProcess) -> str:
    response = httpx.get(f"{server.url}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}, timeout=10)
    assert response.status_code == 200, response.text
    return response.text


# --------------------------------------------------------------------------- the tests


@pytest.mark.parametrize("transport", ["postgresql", "redis"])
def test_two_servers_and_a_worker_stream_share_limits_and_count(
    transport: str, tmp_path: Path, fresh_postgres_url: str, twilio: FakeTwilio, openai: FakeOpenAI
) -> None:
    extra = {"CALLABLE_REDIS_URL": REDIS_URL} if transport == "redis" else {}
    with fleet(tmp_path, fresh_postgres_url, twilio, openai, **extra) as started:
        one, two = started.servers
        token = start_session(one, started.widget_id)
        # The first message creates the conversation.
        assert post_message(two, started.widget_id, token, "Hello").status_code == 202
        with event_stream(one, started.widget_id, token) as first:
            wait_until(lambda: [m for m in first.of("message") if m["author"] == "agent"], timeout=30,
                       what="the first reply on server 1's stream", log=started.logs)
            before = len(first.events)
            openai.queue(ScriptedReply(text=STREAMED, chunk_delay=0.1))
            posted = post_message(two, started.widget_id, token, "How do you make the sourdough?")
            assert posted.status_code == 202, posted.text
            asked_id = posted.json()["message_id"]
            reply = wait_until(
                lambda: [m for m in first.events[before:] if m[1] == "message" and m[2]["author"] == "agent"],
                timeout=30, what="the streamed reply on server 1's stream", log=started.logs,
            )[0]
        new = first.events[before:]
        tokens = [(at, data["text"]) for at, event, data, _id in new if event == "token"]
        assert len(tokens) >= 5, new  # token by token, not one piece
        assert "".join(text for _at, text in tokens) == STREAMED
        assert reply[0] - tokens[0][0] >= 0.4  # the first tokens came while the model was writing
        assert reply[2]["text"] == STREAMED and reply[3] == str(reply[2]["id"])
        # The visitor's own message (posted through server 2) came once, with its id.
        assert [m["id"] for _at, e, m, _i in new if e == "message" and m["author"] == "customer"] == [asked_id]

        # Resumed from Last-Event-ID on the other server: what followed the visitor's message, once.
        with event_stream(two, started.widget_id, token, **{"Last-Event-ID": str(asked_id)}) as resumed:
            wait_until(lambda: resumed.of("message"), timeout=10, what="the resumed stream's messages", log=started.logs)
            time.sleep(1.5)  # a poll or two more: nothing is repeated
            assert [m["id"] for m in resumed.of("message")] == [reply[2]["id"]]

        # A limit of 5 a minute allows 5 in total across both servers.
        limited = start_session(one, started.limited_id)
        answers = [post_message(started.servers[n % 2], started.limited_id, limited, f"message {n}") for n in range(7)]
        assert [a.status_code for a in answers] == [202] * 5 + [429] * 2, [a.text for a in answers]
        for refused in answers[5:]:
            assert refused.json()["error"]["message"].startswith("too many requests; try again in ")
            assert 1 <= int(refused.headers["Retry-After"]) <= 60

        # Each server's /metrics shows what moved there.
        one_text, two_text = metrics(one), metrics(two)
        received = sample_value(one_text, "callable_live_events_total", {"transport": transport, "direction": "received"})
        sent = sample_value(two_text, "callable_live_events_total", {"transport": transport, "direction": "sent"})
        assert received is not None and received >= len(tokens)  # the worker's tokens, relayed
        assert sent is not None and sent >= 2  # the visitor's messages, for other tabs
        refusals = [sample_value(text, "callable_rate_limited_total", {"limit": "webchat_messages"}) or 0 for text in (one_text, two_text)]
        assert refusals == [1, 1]  # the 6th went to server 1, the 7th to server 2


def test_a_take_over_through_one_server_stops_the_turn_the_worker_runs(
    tmp_path: Path, fresh_postgres_url: str, twilio: FakeTwilio, openai: FakeOpenAI
) -> None:
    customer = "whatsapp:+15557000001"
    with fleet(tmp_path, fresh_postgres_url, twilio, openai) as started:
        one, two = started.servers
        openai.queue(ScriptedReply(text="This answer comes too late.", delay=30))
        url = f"{one.url}/channels/whatsapp/{started.world.channel.id}/inbound"
        public_url = f"{PUBLIC_BASE_URL}/channels/whatsapp/{started.world.channel.id}/inbound"
        params = inbound_params(ACCOUNT, customer, SENDER, "Can I talk to someone?")
        assert httpx.post(url, data=params, headers=signed_headers(TOKEN, public_url, params), timeout=10).status_code == 200
        openai.wait_for_requests(1, timeout=30)  # the worker's model call is under way

        async def conversation_id(runtime: Runtime) -> str:
            async with runtime.db.sessions() as session:
                found = await session.scalar(select(Conversation.id).where(Conversation.external_user_id == customer))
            assert found is not None
            return found

        conversation = run(started.settings, conversation_id)
        taken = httpx.post(
            f"{two.url}/api/v1/conversations/{conversation}/takeover",
            json={"author_name": "Dana"}, headers={"Authorization": f"Bearer {started.api_key}"}, timeout=10,
        )
        assert taken.status_code == 200, taken.text
        stopped_at = time.monotonic()

        async def outcomes(runtime: Runtime) -> list[str]:
            async with runtime.db.sessions() as session:
                traces = (await session.scalars(select(Trace).where(Trace.conversation_id == conversation))).all()
            return [str((trace.data or {}).get("outcome")) for trace in traces]

        found = wait_until(lambda: run(started.settings, outcomes), timeout=10, what="the turn's trace", log=started.logs)
        assert found == ["taken_over"]
        assert time.monotonic() - stopped_at < 10  # well before the model's 30 s: its call was cancelled

        async def agent_messages(runtime: Runtime) -> list[str]:
            async with runtime.db.sessions() as session:
                rows = await session.scalars(
                    select(Message.text).where(Message.conversation_id == conversation, Message.author == "agent")
                )
                return list(rows)

        assert run(started.settings, agent_messages) == []
        # Only the take-over notice went to the customer.
        wait_until(lambda: sent_to(twilio.sent_messages, customer), timeout=10, what="the take-over notice", log=started.logs)
        time.sleep(0.5)
        [notice] = sent_to(twilio.sent_messages, customer)
        assert "too late" not in notice["body"]
