"""WhatsApp end to end: the real server process (``callable serve``), the real ``twilio`` and
``openai`` clients inside it, the fake Twilio and fake OpenAI servers on loopback.

Most tests share one server (``shared_stack``), each talking as customers of its own; the
crash test runs its own server, since it kills it.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select

from callable_agents.core.store.channels import create_or_update_channel
from callable_agents.core.store.integrations import connect_integration
from callable_agents.core.models import Channel, Conversation, Job, Message, Workspace
from callable_agents.core.runtime import Runtime
from tests.e2e.conftest import HOURS, Stack, grounded_responder, new_customer, run, start_stack
from tests.e2e.processes import sent_to, wait_until
from tests.e2e.whatsapp_support import ACCOUNT, KEY_SECRET, KEY_SID, OTHER_ACCOUNT, SENDER, TEMPLATE, TOKEN
from callable_agents.testing.openai_server import FakeOpenAI, ScriptedReply
from callable_agents.testing.twilio_server import FakeTwilio
from callable_agents.testing.twilio_signing import inbound_params, signed_headers


def messages_with(stack: Stack, customer: str) -> list[Message]:
    """Every stored message of ``customer``'s conversations, oldest first."""

    async def load(runtime: Runtime) -> list[Message]:
        async with runtime.db.session() as session:
            query = (
                select(Message)
                .join(Conversation, Conversation.id == Message.conversation_id)
                .where(Conversation.external_user_id == customer)
                .order_by(Message.id)
            )
            return list((await session.scalars(query)).all())

    return run(stack.settings, load)


def row_counts(stack: Stack) -> tuple[int, int]:
    async def load(runtime: Runtime) -> tuple[int, int]:
        async with runtime.db.session() as session:
            messages = await session.scalar(select(func.count()).select_from(Message))
            jobs = await session.scalar(select(func.count()).select_from(Job))
        return int(messages or 0), int(jobs or 0)

    return run(stack.settings, load)


def replies_to(stack: Stack, customer: str, *, count: int, timeout: float = 30) -> list[dict[str, Any]]:
    return wait_until(
        lambda: (found := sent_to(stack.twilio.sent_messages, customer)) and len(found) >= count and found,
        timeout=timeout, what=f"{count} replies to {customer}", log=lambda: stack.server.log,
    )


def add_channel(stack: Stack, name: str, config: dict[str, Any], *, integration: str = "twilio") -> Channel:
    """Another WhatsApp channel in the shared workspace (the running server picks it up)."""

    async def create(runtime: Runtime) -> Channel:
        async with runtime.db.session() as session:
            channel, _ = await create_or_update_channel(
                session, runtime, stack.world.workspace.id, name=name, kind="whatsapp", agent="assistant",
                integration=integration, config=config,
            )
        return channel

    return run(stack.settings, create)


def post(stack: Stack, params: dict[str, str], channel: Channel | None = None, *, token: str = TOKEN) -> httpx.Response:
    channel_id = channel.id if channel else stack.world.channel.id
    public_url = stack.inbound_public_url.replace(stack.world.channel.id, channel_id)
    return httpx.post(
        f"{stack.server.url}/channels/whatsapp/{channel_id}/inbound",
        data=params, headers=signed_headers(token, public_url, params), timeout=10,
    )


def chat_requests_from(openai: FakeOpenAI, text: str) -> int:
    return sum(1 for request in openai.chat_requests if text in request.prompt_text)


# --- the happy path ------------------------------------------------------------------------------


def test_signed_webhook_gets_a_grounded_reply_from_the_right_sender(shared_stack: Stack) -> None:
    stack, customer = shared_stack, new_customer()
    started = time.monotonic()
    response = post(stack, stack.inbound("When are you open?", user=customer))
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/xml")
    assert time.monotonic() - started < 2  # answered at once, not after the model

    [reply] = replies_to(stack, customer, count=1)
    assert reply["from_"] == SENDER
    assert reply["account_sid"] == ACCOUNT and reply["auth_username"] == ACCOUNT
    assert reply["body"] == f"ack: When are you open? (hours: {HOURS})"  # grounded in the business info
    assert reply["status_callback"] == stack.status_public_url
    inbound = [m for m in messages_with(stack, customer) if m.direction == "inbound"]
    assert any(t["message_id"] == inbound[0].provider_message_id for t in stack.twilio.typing_indicators)


def test_a_slow_typing_indicator_neither_holds_the_model_call_nor_comes_after_the_reply(shared_stack: Stack) -> None:
    stack, customer = shared_stack, new_customer()
    stack.twilio.delay_next(1, 1.5, scope="typing")
    question = f"When are you open? ({customer})"
    assert post(stack, stack.inbound(question, user=customer)).status_code == 200

    [reply] = replies_to(stack, customer, count=1)
    [inbound] = [m for m in messages_with(stack, customer) if m.direction == "inbound"]
    [typing] = [t for t in stack.twilio.typing_indicators if t["message_id"] == inbound.provider_message_id]
    [asked] = [r for r in stack.openai.chat_requests if question in r.prompt_text]
    assert asked.received_at < typing["time"] - 1.0  # the model was asked while "typing" was on its way
    assert typing["time"] <= reply["time"]  # and the reply went after it


def test_a_typing_indicator_that_hangs_holds_the_reply_no_longer_than_the_grace(shared_stack: Stack) -> None:
    stack, customer = shared_stack, new_customer()
    stack.twilio.delay_next(1, 8, scope="typing")
    started = time.monotonic()
    assert post(stack, stack.inbound("Are you open on Sundays?", user=customer)).status_code == 200
    replies_to(stack, customer, count=1, timeout=7)
    assert time.monotonic() - started < 2.0 + 4  # ANNOUNCE_GRACE_SECONDS, and the turn itself


def test_a_long_reply_is_split_into_parts_of_at_most_1600_characters_in_order(shared_stack: Stack) -> None:
    stack, customer = shared_stack, new_customer()
    assert post(stack, stack.inbound("Tell me everything, LONG please", user=customer)).status_code == 200
    parts = wait_until(
        lambda: (found := sent_to(stack.twilio.sent_messages, customer)) and "Section 7." in found[-1]["body"] and found,
        timeout=30, what="the last part", log=lambda: stack.server.log,
    )
    bodies = [p["body"] for p in parts]
    assert len(bodies) >= 3 and all(len(body) <= 1600 for body in bodies)
    sections = [n for body in bodies for n in range(8) if f"Section {n}." in body]
    assert sections == list(range(8))  # every section, once, in order
    time.sleep(0.5)
    assert len(sent_to(stack.twilio.sent_messages, customer)) == len(parts)


def test_three_messages_to_a_slow_model_get_one_reply_addressing_all_three(shared_stack: Stack) -> None:
    """At the default reply policy (interrupt): each message supersedes the turn answering the
    ones before, and the last turn answers all three."""
    stack, customer = shared_stack, new_customer()
    texts = ["Hi", "do you have croissants", "and gluten-free bread?"]
    stack.openai.responder = lambda request: ScriptedReply(text=grounded_responder(request), delay=1.0)
    try:
        for index, text in enumerate(texts):
            if index:
                time.sleep(0.3)
            assert post(stack, stack.inbound(text, user=customer)).status_code == 200
        [reply] = replies_to(stack, customer, count=1)
        assert reply["body"].startswith("ack: Hi | do you have croissants | and gluten-free bread?")
        time.sleep(1.5)
        assert len(sent_to(stack.twilio.sent_messages, customer)) == 1
    finally:
        stack.openai.responder = grounded_responder


def test_three_messages_to_a_quick_model_get_a_reply_each_in_order(shared_stack: Stack) -> None:
    stack, customer = shared_stack, new_customer()
    texts = ["Hi", "do you have croissants", "and gluten-free bread?"]
    for index, text in enumerate(texts):
        if index:
            time.sleep(0.3)
        assert post(stack, stack.inbound(text, user=customer)).status_code == 200
    replies = replies_to(stack, customer, count=3)
    assert [reply["body"].split(" (hours")[0] for reply in replies] == [f"ack: {text}" for text in texts]
    time.sleep(1.0)
    assert len(sent_to(stack.twilio.sent_messages, customer)) == 3


# --- what is refused ---------------------------------------------------------------------------------


def test_rejected_webhooks_store_nothing_and_get_no_reply(shared_stack: Stack) -> None:
    stack, customer = shared_stack, new_customer()
    before = row_counts(stack), len(stack.twilio.sent_messages), len(stack.openai.chat_requests)
    base = f"{stack.server.url}/channels/whatsapp/{stack.world.channel.id}/inbound"
    params = stack.inbound("hello", user=customer)
    assert httpx.post(base, data=params).status_code == 403  # no signature
    assert post(stack, params, token="wrong-token").status_code == 403
    assert post(stack, inbound_params(OTHER_ACCOUNT, customer, SENDER, "hello")).status_code == 403
    unknown = f"{stack.server.url}/channels/whatsapp/{'0' * 32}/inbound"
    assert httpx.post(unknown, data=params, headers=signed_headers(TOKEN, stack.inbound_public_url, params)).status_code == 404
    signed = signed_headers(TOKEN, stack.inbound_public_url, params)
    malformed = httpx.post(base, content=b"Body=%FF&x", headers=signed)
    assert malformed.status_code == 400 and "malformed form body" in malformed.text
    missing = post(stack, {k: v for k, v in params.items() if k != "MessageSid"})
    assert missing.status_code == 400 and missing.text == "MessageSid: required"
    assert post(stack, stack.inbound("x" * 2_000_000, user=customer)).status_code == 413
    time.sleep(1.5)  # a reply, if one were coming, would be on its way by now
    after = row_counts(stack), len(stack.twilio.sent_messages), len(stack.openai.chat_requests)
    assert after == before
    assert messages_with(stack, customer) == []


def test_a_replayed_message_sid_is_answered_once(shared_stack: Stack) -> None:
    stack, customer = shared_stack, new_customer()
    params = stack.inbound("Do you bake on Sundays?", user=customer)
    for _ in range(3):
        assert post(stack, params).status_code == 200
    replies_to(stack, customer, count=1)
    assert post(stack, params).status_code == 200  # a late retry, after the reply went out
    time.sleep(1.5)
    assert len(sent_to(stack.twilio.sent_messages, customer)) == 1
    assert [m.direction for m in messages_with(stack, customer)] == ["inbound", "outbound"]


# --- Twilio failures -----------------------------------------------------------------------------------


def test_two_500s_then_success_is_delivered_once(shared_stack: Stack) -> None:
    stack, customer = shared_stack, new_customer()
    first_request = len(stack.twilio.requests)
    stack.twilio.fail_next(2, 500, scope="messages")
    post(stack, stack.inbound("Two failures, then fine", user=customer))
    [sent] = replies_to(stack, customer, count=1, timeout=40)
    attempts = [r for r in stack.twilio.requests[first_request:] if r.scope == "messages" and r.method == "POST"]
    assert [r.status for r in attempts] == [500, 500, 201]
    time.sleep(1.0)
    assert len(sent_to(stack.twilio.sent_messages, customer)) == 1
    reply = wait_until(
        lambda: next((m for m in messages_with(stack, customer) if m.provider_message_id == sent["sid"]), None),
        timeout=10, what="the reply's SID to be stored",
    )
    assert reply.status == "queued" and reply.error_code is None


def test_429_is_backed_off_as_twilio_asks(shared_stack: Stack) -> None:
    stack, customer = shared_stack, new_customer()
    first_request = len(stack.twilio.requests)
    stack.twilio.fail_next(1, 429, code=20429, scope="messages", retry_after=2)
    post(stack, stack.inbound("Busy?", user=customer))
    replies_to(stack, customer, count=1, timeout=40)
    first, second = [r for r in stack.twilio.requests[first_request:] if r.scope == "messages" and r.method == "POST"]
    assert first.status == 429 and second.status == 201
    assert second.time - first.time >= 1.9


def test_63016_without_a_template_is_a_clear_error_on_the_message(shared_stack: Stack) -> None:
    stack, customer = shared_stack, new_customer()
    stack.twilio.fail_next(1, 400, code=63016, scope="messages")
    post(stack, stack.inbound("Hello?", user=customer))
    reply = wait_until(
        lambda: next((m for m in messages_with(stack, customer) if m.status == "failed"), None),
        timeout=30, what="the failed reply", interval=0.2, log=lambda: stack.server.log,
    )
    assert reply.error_code == "63016"
    assert "outside WhatsApp's 24-hour window" in (reply.error_message or "")
    assert sent_to(stack.twilio.sent_messages, customer) == []


def test_63016_with_a_template_sends_the_template(shared_stack: Stack) -> None:
    stack, customer = shared_stack, new_customer()
    channel = add_channel(
        stack, "with-template", {"sender": SENDER, "template": {"content_sid": TEMPLATE, "variables": {"1": "{name}"}}}
    )
    stack.twilio.fail_next(1, 400, code=63016, scope="messages")
    assert post(stack, stack.inbound("Hello?", user=customer), channel).status_code == 200
    [sent] = replies_to(stack, customer, count=1)
    assert sent["content_sid"] == TEMPLATE and sent["body"] is None
    assert sent["content_variables"] == '{"1": "Ana Test"}'


def test_an_opted_out_contact_gets_nothing_more(shared_stack: Stack) -> None:
    stack, customer = shared_stack, new_customer()
    stack.twilio.fail_next(1, 400, code=21610, scope="messages")
    post(stack, stack.inbound("first", user=customer))
    wait_until(
        lambda: any(m.error_code == "21610" for m in messages_with(stack, customer)),
        timeout=30, what="the opt-out to be recorded", interval=0.2,
    )
    posts_before = len([r for r in stack.twilio.requests if r.scope == "messages"])
    post(stack, stack.inbound("second", user=customer))
    wait_until(
        lambda: len([m for m in messages_with(stack, customer) if m.error_code == "21610"]) == 2,
        timeout=30, what="the second reply to be refused", interval=0.2,
    )
    assert len([r for r in stack.twilio.requests if r.scope == "messages"]) == posts_before
    assert sent_to(stack.twilio.sent_messages, customer) == []


# --- credentials and statuses ---------------------------------------------------------------------------


def test_replies_use_the_api_key_when_the_integration_has_one(shared_stack: Stack) -> None:
    stack, customer = shared_stack, new_customer()
    stack.twilio.add_api_key(ACCOUNT, KEY_SID, KEY_SECRET)

    async def connect(runtime: Runtime) -> None:
        async with runtime.db.session() as session:
            workspace = await session.get(Workspace, stack.world.workspace.id)
            assert workspace is not None
            await connect_integration(
                session, runtime.vault, workspace, provider="twilio", name="twilio-key",
                public={"account_sid": ACCOUNT, "api_key_sid": KEY_SID},
                secrets={"auth_token": TOKEN, "api_key_secret": KEY_SECRET},
            )

    run(stack.settings, connect)
    channel = add_channel(stack, "api-key", {"sender": SENDER}, integration="twilio-key")
    assert post(stack, stack.inbound("hi", user=customer), channel).status_code == 200
    [reply] = replies_to(stack, customer, count=1)
    assert reply["auth_username"] == KEY_SID


def test_out_of_order_status_callbacks_end_at_the_highest_status(shared_stack: Stack) -> None:
    stack, customer = shared_stack, new_customer()
    post(stack, stack.inbound("status please", user=customer))
    [reply] = replies_to(stack, customer, count=1)
    wait_until(
        lambda: any(m.provider_message_id == reply["sid"] for m in messages_with(stack, customer)),
        timeout=10, what="the reply's SID to be stored",
    )
    url = f"{stack.server.url}/channels/whatsapp/{stack.world.channel.id}/status"
    with httpx.Client(timeout=10) as client:
        for status in ("delivered", "read", "sent", "delivered", "queued"):
            params = stack.twilio.status_callback_params(reply["sid"], status)
            response = client.post(url, data=params, headers=signed_headers(TOKEN, stack.status_public_url, params))
            assert response.status_code == 200
    [outbound] = [m for m in messages_with(stack, customer) if m.direction == "outbound"]
    assert outbound.status == "read"


# --- crash safety ---------------------------------------------------------------------------------------


def test_kill_9_after_acknowledging_then_restart_sends_each_reply_exactly_once(
    tmp_path: Path, twilio: FakeTwilio, openai: FakeOpenAI
) -> None:
    """Two replies are in flight when the server is killed: one customer's message is
    acknowledged and stored but its turn hasn't run (the channel waits out a quiet window),
    another's reply is stored
    and its first send failed (waiting for the retry). After a restart each goes out once."""
    stack = start_stack(tmp_path, twilio, openai, replies={"strategy": "wait", "window_seconds": 2.0})
    waiting_send, not_yet_answered = new_customer(), new_customer()
    try:
        twilio.fail_next(1, 503, scope="messages", retry_after=4)
        assert post(stack, stack.inbound("Can I order a cake?", user=waiting_send)).status_code == 200

        def send_waits_for_retry() -> bool:
            async def load(runtime: Runtime) -> bool:
                async with runtime.db.session() as session:
                    job = await session.scalar(select(Job).where(Job.kind == "send"))
                return job is not None and job.status == "pending" and job.attempts == 1

            return run(stack.settings, load)

        wait_until(send_waits_for_retry, timeout=30, what="the send job to wait for its retry", interval=0.1)
        assert post(stack, stack.inbound("Is the bakery open today?", user=not_yet_answered)).status_code == 200
        stack.server.kill9()
        assert twilio.sent_messages == []
        assert chat_requests_from(openai, "Is the bakery open today?") == 0

        stack.restart()
        [cake] = replies_to(stack, waiting_send, count=1)
        [today] = replies_to(stack, not_yet_answered, count=1)
        assert cake["body"].startswith("ack: Can I order a cake?")
        assert today["body"].startswith("ack: Is the bakery open today?")
        time.sleep(2.0)
        assert len(twilio.sent_messages) == 2
        assert len(openai.chat_requests) == 2  # neither turn ran twice
    finally:
        stack.server.stop()


def test_a_graceful_restart_during_a_turn_answers_it_at_once_and_once(
    tmp_path: Path, twilio: FakeTwilio, openai: FakeOpenAI
) -> None:
    """Stopped (SIGTERM) while a turn waits on the model: the turn is given back at shutdown,
    so the restarted server answers at once, not after the job's 60 s lease, and once."""
    stack = start_stack(tmp_path, twilio, openai)
    customer = new_customer()
    try:
        openai.queue_reply("too slow to be heard", delay=30)
        assert post(stack, stack.inbound("Do you deliver on Sundays?", user=customer)).status_code == 200
        wait_until(
            lambda: chat_requests_from(openai, "Do you deliver on Sundays?") == 1,
            timeout=30, what="the turn to ask the model", interval=0.1,
        )
        stack.server.stop()
        assert twilio.sent_messages == []

        restarted = time.monotonic()
        stack.restart()
        [reply] = replies_to(stack, customer, count=1, timeout=20)
        assert time.monotonic() - restarted < 20  # the lease is 60 s
        assert reply["body"].startswith("ack: Do you deliver on Sundays?")
        time.sleep(1.0)
        assert len(twilio.sent_messages) == 1
        assert chat_requests_from(openai, "Do you deliver on Sundays?") == 2  # the stopped turn, then its rerun
    finally:
        stack.server.stop()
