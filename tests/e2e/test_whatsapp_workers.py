"""Several worker processes on PostgreSQL: every WhatsApp message answered exactly once, and
each conversation's replies in order.

One ``callable serve`` process takes the webhooks (its own worker off) and two ``callable
worker`` processes share the jobs through ``FOR UPDATE SKIP LOCKED``.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
from sqlalchemy import select

from callable_agents.core.config import Settings
from callable_agents.core.models import Job, Message, Trace
from callable_agents.core.runtime import Runtime
from tests.cli.helpers import free_port
from tests.e2e.conftest import acknowledged, grounded_responder, prepare, run
from tests.e2e.processes import CallableProcess, ServerProcess, process_env, sent_to, wait_until
from tests.e2e.whatsapp_support import ACCOUNT, PUBLIC_BASE_URL, SENDER, TOKEN
from callable_agents.testing.openai_server import FakeOpenAI, ScriptedReply
from callable_agents.testing.twilio_server import FakeTwilio
from callable_agents.testing.twilio_signing import inbound_params, signed_headers

CONVERSATIONS = 20
MESSAGES_EACH = 10


def start_processes(
    settings: Settings, env: dict[str, str], tmp_path: Path, concurrency: int
) -> tuple[ServerProcess, list[CallableProcess]]:
    """``callable serve`` taking the webhooks (its own worker off) and two ``callable worker``
    processes, started."""
    server = ServerProcess({**env, "CALLABLE_RUN_WORKER": "false"}, tmp_path / "server.log", free_port())
    workers = [
        CallableProcess(["worker", "--concurrency", str(concurrency)], env, tmp_path / f"worker-{n}.log") for n in range(2)
    ]
    try:
        server.start_and_wait()
        for worker in workers:
            worker.start()
    except BaseException:
        for process in (*workers, server):
            process.stop()
        raise
    return server, workers


def inbound_urls(server: ServerProcess, channel_id: str) -> tuple[str, str]:
    """The webhook's local URL and the public one its signature is computed over."""
    path = f"/channels/whatsapp/{channel_id}/inbound"
    return f"{server.url}{path}", f"{PUBLIC_BASE_URL}{path}"
def test_two_workers_answer_200_messages_in_20_conversations_exactly_once_in_order(
    tmp_path: Path, fresh_postgres_url: str, twilio: FakeTwilio, openai: FakeOpenAI
) -> None:
    settings, world = prepare(tmp_path, twilio, openai, database_url=fresh_postgres_url)
    customers = [f"whatsapp:+1555300{n:04d}" for n in range(CONVERSATIONS)]
    expected = {customer: [f"c{c:02d}-m{m:02d}" for m in range(MESSAGES_EACH)] for c, customer in enumerate(customers)}
    server, workers = start_processes(settings, process_env(settings), tmp_path, concurrency=6)
    try:
        inbound_url, public_url = inbound_urls(server, world.channel.id)
        with httpx.Client(timeout=10) as client:
            for m in range(MESSAGES_EACH):  # interleaved, as real traffic is
                for customer in customers:
                    params = inbound_params(ACCOUNT, customer, SENDER, expected[customer][m])
                    response = client.post(inbound_url, data=params, headers=signed_headers(TOKEN, public_url, params))
                    assert response.status_code == 200

        def all_answered() -> bool:
            sent = twilio.sent_messages
            return all(len(acknowledged(sent_to(sent, c))) >= MESSAGES_EACH for c in customers)

        logs = lambda: "\n".join(p.log[-3000:] for p in (server, *workers))  # noqa: E731
        wait_until(all_answered, timeout=120, what="every message to be answered", interval=0.25, log=logs)
        for customer in customers:
            replies = sent_to(twilio.sent_messages, customer)
            assert acknowledged(replies) == expected[customer]  # each once, in order
            assert {reply["from_"] for reply in replies} == {SENDER}

        async def facts(runtime: Runtime) -> tuple[set[str], list[int | None]]:
            async with runtime.db.session() as session:
                lockers = set((await session.scalars(select(Job.locked_by).where(Job.kind == "turn"))).all())
                turn_ids = list(
                    (await session.scalars(select(Message.turn_id).where(Message.direction == "inbound"))).all()
                )
            return {locker for locker in lockers if locker}, turn_ids

        lockers, turn_ids = run(settings, facts)
        assert len(turn_ids) == CONVERSATIONS * MESSAGES_EACH and None not in turn_ids
        assert len({locker.split(":")[1] for locker in lockers}) == 2  # both worker processes took turns
    finally:
        for process in (*workers, server):
            process.stop()


def test_two_workers_superseding_turns_answer_every_message_once_in_order_and_send_nothing_superseded(
    tmp_path: Path, fresh_postgres_url: str, twilio: FakeTwilio, openai: FakeOpenAI
) -> None:
    """A model that takes 0.6 s and customers who send four messages 0.3 s apart: most turns
    are superseded, by a message filed in their own process (cancelled) or in the other
    (refused at commit). Every message is answered exactly once, in order, and no
    superseded turn's reply is stored or sent."""
    openai.responder = lambda request: ScriptedReply(text=grounded_responder(request), delay=0.6)
    settings, world = prepare(tmp_path, twilio, openai, database_url=fresh_postgres_url)
    customers = [f"whatsapp:+1555400{n:04d}" for n in range(6)]
    expected = {customer: [f"c{c}-m{m}" for m in range(4)] for c, customer in enumerate(customers)}
    server, workers = start_processes(settings, process_env(settings), tmp_path, concurrency=4)
    logs = lambda: "\n".join(p.log[-3000:] for p in (server, *workers))  # noqa: E731
    try:
        inbound_url, public_url = inbound_urls(server, world.channel.id)
        with httpx.Client(timeout=10) as client:
            # Once both workers run (a process takes seconds to start), the customers write.
            for worker in workers:
                wait_until(lambda: "running" in worker.log, timeout=60, what="the worker to start", log=logs)
            warm_up = "whatsapp:+15554009999"
            params = inbound_params(ACCOUNT, warm_up, SENDER, "warm-up")
            assert client.post(inbound_url, data=params, headers=signed_headers(TOKEN, public_url, params)).status_code == 200
            wait_until(lambda: sent_to(twilio.sent_messages, warm_up), timeout=60, what="the warm-up reply", log=logs)
            for m in range(4):
                for customer in customers:
                    params = inbound_params(ACCOUNT, customer, SENDER, expected[customer][m])
                    assert client.post(inbound_url, data=params, headers=signed_headers(TOKEN, public_url, params)).status_code == 200
                time.sleep(0.3)

        def all_answered() -> bool:
            sent = twilio.sent_messages
            return all(len(acknowledged(sent_to(sent, c))) >= 4 for c in customers)

        wait_until(all_answered, timeout=60, what="every message to be answered", interval=0.25, log=logs)
        time.sleep(1.5)  # a superseded turn still running would send now
        for customer in customers:
            assert acknowledged(sent_to(twilio.sent_messages, customer)) == expected[customer]

        async def facts(runtime: Runtime) -> tuple[list[dict[str, object]], set[int | None]]:
            async with runtime.db.session() as session:
                traces = list((await session.scalars(select(Trace.data).where(Trace.step == "turn"))).all())
                reply_turns = set((await session.scalars(select(Message.turn_id).where(Message.direction == "outbound"))).all())
            return traces, reply_turns

        traces, reply_turns = run(settings, facts)
        superseded = {trace["job_id"] for trace in traces if trace["outcome"] == "superseded"}
        assert superseded, "no turn was superseded: the test did not test superseding"
        assert not superseded & reply_turns
        assert len(twilio.sent_messages) == len(reply_turns) == len(traces) - len(superseded)
    finally:
        for process in (*workers, server):
            process.stop()
