"""Exactly-once WhatsApp sends across crashes: a real server process is killed (SIGKILL) ten
times while Twilio (the loopback fake, answering every create after 3 s) holds its creates,
and restarted each time; every reply reaches the customer exactly once.

Before, a send job reclaimed after a crash sent its message again blind: the fake counted
replies created two and three times. Now each attempt is recorded before the create and a
retry looks it up in Twilio's Messages list first (plugins/whatsapp/send.py).
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
from sqlalchemy import func, select

from callable_agents.core.models import Job, Message, Trace
from callable_agents.core.runtime import Runtime
from callable_agents.testing.openai_server import FakeOpenAI, ScriptedReply
from callable_agents.testing.twilio_server import FakeTwilio
from tests.cli.helpers import free_port
from tests.e2e.conftest import Stack, acknowledged, grounded_responder, new_customer, prepare, run
from tests.e2e.processes import ServerProcess, process_env, sent_to, wait_until
from tests.e2e.whatsapp_support import TOKEN
from callable_agents.testing.twilio_signing import signed_headers

CREATE_SECONDS = 3.0  # the fake answers every create this late
SETTLE_SECONDS = 4.5  # the server trusts Twilio's list this long after an attempt began
KILLS = 10
CUSTOMERS_PER_ROUND = 2


def post(stack: Stack, customer: str, text: str) -> None:
    params = stack.inbound(text, user=customer)
    url = f"{stack.server.url}/channels/whatsapp/{stack.world.channel.id}/inbound"
    response = httpx.post(url, data=params, headers=signed_headers(TOKEN, stack.inbound_public_url, params), timeout=10)
    assert response.status_code == 200, response.text


def creates_in_flight(twilio: FakeTwilio, since: float) -> int:
    """Creates received since ``since`` that Twilio has not answered yet."""
    return sum(
        1 for r in twilio.requests
        if r.method == "POST" and r.path.endswith("/Messages.json") and r.status is None and r.time >= since
    )


async def unfinished_sends(runtime: Runtime) -> int:
    async with runtime.db.session() as session:
        count = await session.scalar(
            select(func.count()).select_from(Job).where(Job.kind == "send", Job.status.in_(("pending", "running")))
        )
    return int(count or 0)


def test_kill_9_ten_times_while_creates_are_in_flight_sends_each_reply_exactly_once(
    tmp_path: Path, twilio: FakeTwilio, openai: FakeOpenAI
) -> None:
    twilio.answer_creates_after(CREATE_SECONDS)
    settings, world = prepare(tmp_path, twilio, openai)
    env = process_env(
        settings, CALLABLE_JOB_LEASE_SECONDS="2", CALLABLE_TWILIO_SEND_SETTLE_SECONDS=str(SETTLE_SECONDS),
    )
    server = ServerProcess(env, tmp_path / "server.log", free_port()).start_and_wait()
    stack = Stack(settings, twilio, openai, world, server, tmp_path)
    questions: dict[str, str] = {}
    cut_short = 0
    try:
        for round_ in range(KILLS):
            started = time.time()
            for n in range(CUSTOMERS_PER_ROUND):
                customer = new_customer()
                questions[customer] = f"Round {round_}, customer {n}: do you have rye bread?"
                post(stack, customer, questions[customer])
            cut_short += wait_until(
                lambda: creates_in_flight(twilio, started), timeout=20,
                what=f"a create in flight in round {round_}", interval=0.02, log=lambda: stack.server.log,
            )
            stack.server.kill9()
            stack.restart()

        for customer, question in questions.items():
            wait_until(
                lambda: sent_to(twilio.sent_messages, customer), timeout=40,
                what=f"the reply to {customer}", log=lambda: stack.server.log,
            )
        # Let it finish: a late duplicate would come from a send job still to run.
        wait_until(
            lambda: run(settings, unfinished_sends) == 0, timeout=40, interval=0.5,
            what="every send job to finish", log=lambda: stack.server.log,
        )
        # Any create still held by Twilio (at most CREATE_SECONDS) lands in the counts.
        wait_until(
            lambda: creates_in_flight(twilio, 0) == 0, timeout=CREATE_SECONDS + 10,
            what="every create held by Twilio to be answered", log=lambda: stack.server.log,
        )
    finally:
        stack.server.stop()

    assert cut_short >= KILLS  # every kill cut at least one create short
    counts = twilio.create_counts
    duplicates = {key: count for key, count in counts.items() if count != 1}
    assert duplicates == {}, f"replies created more than once: {duplicates}"
    for customer, question in questions.items():
        [reply] = sent_to(twilio.sent_messages, customer)
        assert reply["body"].startswith("ack:")  # (a turn rerun after a kill may see its prompt differently)

    async def outbound(runtime: Runtime) -> list[Message]:
        async with runtime.db.session() as session:
            rows = await session.scalars(select(Message).where(Message.direction == "outbound"))
            return list(rows.all())

    stored = run(settings, outbound)
    assert len(stored) == len(questions)
    sids = {m["sid"] for m in twilio.sent_messages}
    # Each stored reply is recorded as sent with the SID of the one message Twilio created.
    assert all(m.status != "pending" and m.provider_message_id in sids for m in stored), [
        (m.status, m.provider_message_id, m.error_code) for m in stored
    ]
    assert len({m.provider_message_id for m in stored}) == len(stored)


SUPERSEDE_ROUNDS = 4
MODEL_SECONDS = 1.0


async def turn_outcomes(runtime: Runtime) -> list[dict[str, object]]:
    async with runtime.db.session() as session:
        return list((await session.scalars(select(Trace.data).where(Trace.step == "turn"))).all())


def test_kill_9_while_turns_are_being_superseded_answers_every_message_once_in_order(
    tmp_path: Path, twilio: FakeTwilio, openai: FakeOpenAI
) -> None:
    """A model that takes 1 s; each customer sends two messages 300 ms apart, so the second
    supersedes the turn answering the first; the server is killed (SIGKILL) at a different
    moment of that each round, and restarted. Every message is answered exactly once, in
    order, never as an empty question, and no superseded turn sent anything."""
    openai.responder = lambda request: ScriptedReply(text=grounded_responder(request), delay=MODEL_SECONDS)
    settings, world = prepare(tmp_path, twilio, openai)
    env = process_env(settings, CALLABLE_JOB_LEASE_SECONDS="2")
    server = ServerProcess(env, tmp_path / "server.log", free_port()).start_and_wait()
    stack = Stack(settings, twilio, openai, world, server, tmp_path)
    expected: dict[str, list[str]] = {}
    try:
        for round_ in range(SUPERSEDE_ROUNDS):
            for n in range(CUSTOMERS_PER_ROUND):
                customer = new_customer()
                expected[customer] = [f"r{round_}c{n} first", f"r{round_}c{n} second"]
                post(stack, customer, expected[customer][0])
            time.sleep(0.3)
            for customer in list(expected)[-CUSTOMERS_PER_ROUND:]:
                post(stack, customer, expected[customer][1])
            time.sleep(0.35 * round_)  # killed while superseding, asking the model, storing, sending
            stack.server.kill9()
            stack.restart()

        def all_answered() -> bool:
            sent = twilio.sent_messages
            return all(len(acknowledged(sent_to(sent, c))) >= 2 for c in expected)

        wait_until(all_answered, timeout=60, what="every message to be answered", interval=0.25, log=lambda: stack.server.log)
        wait_until(
            lambda: run(settings, unfinished_sends) == 0, timeout=30, interval=0.5,
            what="every send job to finish", log=lambda: stack.server.log,
        )
        time.sleep(MODEL_SECONDS + 1)  # a turn still running would send now
    finally:
        stack.server.stop()

    for customer, texts in expected.items():
        assert acknowledged(sent_to(twilio.sent_messages, customer)) == texts  # each once, in order, none empty
    assert {key: count for key, count in twilio.create_counts.items() if count != 1} == {}
    outcomes = run(settings, turn_outcomes)
    superseded = [trace for trace in outcomes if trace["outcome"] == "superseded"]
    assert superseded, "no turn was superseded: the test did not test superseding"

    async def reply_turns(runtime: Runtime) -> set[int | None]:
        async with runtime.db.session() as session:
            return set((await session.scalars(select(Message.turn_id).where(Message.direction == "outbound"))).all())

    assert not {trace["job_id"] for trace in superseded} & run(settings, reply_turns)  # no superseded turn sent
