"""Tracing: the real OpenTelemetry SDK with an in-memory exporter records the spans of a
WhatsApp message from its webhook through the turn (GenAI conventions) to the send."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from callable_agents.core.observability.tracing import (
    CAPTURE_CONTENT_ENV,
    configure_tracing,
    configure_tracing_from_env,
    disable_tracing,
    span,
    tracing_enabled,
)
from tests.observability.support import HANDOFF_TOOL, Served, served

HOURS = "Opening hours. We open Monday to Saturday from 7:00 to 18:00; Sunday closed."
SECRET_QUESTION = "my loyalty number is 4411-9922, when do you open"


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    configure_tracing(provider)
    try:
        yield memory
    finally:
        disable_tracing()
        provider.shutdown()


def named(spans: list[ReadableSpan], prefix: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name.startswith(prefix)]


def children_of(spans: list[ReadableSpan], parent: ReadableSpan) -> list[ReadableSpan]:
    return [s for s in spans if s.parent is not None and s.parent.span_id == parent.context.span_id]


def descends_from(spans: list[ReadableSpan], child: ReadableSpan, ancestor: ReadableSpan) -> bool:
    by_id = {s.context.span_id: s for s in spans}
    current: ReadableSpan | None = child
    while current is not None and current.parent is not None:
        if current.parent.span_id == ancestor.context.span_id:
            return True
        current = by_id.get(current.parent.span_id)
    return False


async def answered_once(env: Served, customer: str, text: str) -> None:
    assert (await env.webhook(text, customer=customer)).status_code == 200
    await env.replies_to(customer, 1)


async def finished(exporter: InMemorySpanExporter, env: Served, count: int) -> list[ReadableSpan]:
    """The spans once ``count`` send spans ended (a turn's own sends end after Twilio answered)."""
    import asyncio

    for _ in range(100):
        spans = list(exporter.get_finished_spans())
        if len(named(spans, "send ")) >= count and named(spans, "invoke_agent"):
            return spans
        await asyncio.sleep(0.05)
    return list(exporter.get_finished_spans())


async def test_webhook_turn_and_send_spans_and_their_links(tmp_path: Path, exporter: InMemorySpanExporter) -> None:
    async with served(tmp_path, knowledge=HOURS) as env:
        env.openai.queue_reply("We open at 7:00.")
        await answered_once(env, "whatsapp:+15550004444", SECRET_QUESTION)
        spans = await finished(exporter, env, 1)

    [webhook] = named(spans, "POST /channels/whatsapp")
    assert webhook.kind == SpanKind.SERVER
    assert webhook.attributes is not None and webhook.attributes["http.response.status_code"] == 200
    assert env.world.channel.id not in webhook.name  # named by route, not by id

    [turn] = named(spans, "invoke_agent")
    assert turn.name == "invoke_agent assistant"
    attributes = dict(turn.attributes or {})
    assert attributes["gen_ai.operation.name"] == "invoke_agent"
    assert attributes["gen_ai.agent.name"] == "assistant"
    assert attributes["gen_ai.agent.id"] == env.world.agent.id
    assert attributes["callable.turn.outcome"] == "answered"
    conversation_id = attributes["gen_ai.conversation.id"]
    assert isinstance(conversation_id, str) and conversation_id
    # Across the job boundary: the turn is linked to the webhook that brought its message.
    assert [(link.context.trace_id, link.context.span_id) for link in turn.links] == [
        (webhook.context.trace_id, webhook.context.span_id)
    ]

    [retrieval] = named(spans, "retrieval")
    [chat] = named(spans, "chat ")
    assert retrieval.parent is not None and retrieval.parent.span_id == turn.context.span_id
    assert (retrieval.attributes or {})["callable.retrieval.passages"] >= 1
    assert chat.name == "chat gpt-4o-mini" and chat.kind == SpanKind.CLIENT
    assert descends_from(spans, chat, turn)
    chat_attributes = dict(chat.attributes or {})
    assert chat_attributes["gen_ai.operation.name"] == "chat"
    assert chat_attributes["gen_ai.request.model"] == "gpt-4o-mini"
    assert chat_attributes["gen_ai.usage.input_tokens"] > 0 and chat_attributes["gen_ai.usage.output_tokens"] > 0

    [send] = named(spans, "send whatsapp")
    assert descends_from(spans, send, turn)  # the turn's own send job continues its trace
    assert send.context.trace_id == turn.context.trace_id

    # Content is off by default: neither the customer's words nor the reply are on any span.
    for recorded in spans:
        dumped = json.dumps({k: str(v) for k, v in (recorded.attributes or {}).items()})
        assert "4411-9922" not in dumped and "We open at 7:00" not in dumped
        assert not any(key.startswith(("gen_ai.input", "gen_ai.output")) for key in (recorded.attributes or {}))


async def test_a_tool_call_is_an_execute_tool_span_under_the_turn(tmp_path: Path, exporter: InMemorySpanExporter) -> None:
    async with served(tmp_path, tools=[HANDOFF_TOOL]) as env:
        env.openai.queue_tool_call("talk_to_a_person", {"reason": "wants a person"}, id="call-42")
        await answered_once(env, "whatsapp:+15550005555", "a person please")
        spans = await finished(exporter, env, 1)
    [turn] = named(spans, "invoke_agent")
    [tool] = named(spans, "execute_tool")
    assert tool.name == "execute_tool talk_to_a_person"
    assert descends_from(spans, tool, turn)
    assert dict(tool.attributes or {}) == {
        "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "talk_to_a_person",
        "gen_ai.tool.call.id": "call-42", "gen_ai.tool.type": "function",
    }
    assert (turn.attributes or {})["callable.turn.outcome"] == "handed_off"


async def test_content_is_recorded_only_when_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CAPTURE_CONTENT_ENV, "true")
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    configure_tracing(provider)
    try:
        async with served(tmp_path) as env:
            env.openai.queue_reply("We open at 7:00.")
            await answered_once(env, "whatsapp:+15550006666", SECRET_QUESTION)
            spans = await finished(memory, env, 1)
    finally:
        disable_tracing()
        provider.shutdown()
    [chat] = named(spans, "chat ")
    attributes = dict(chat.attributes or {})
    assert "4411-9922" in str(attributes["gen_ai.input.messages"])
    assert "We open at 7:00" in str(attributes["gen_ai.output.messages"])


def test_off_without_an_otlp_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    assert configure_tracing_from_env() is False
    assert not tracing_enabled()
    with span("anything") as current:
        assert current is None  # nothing is created, not even a non-recording span
