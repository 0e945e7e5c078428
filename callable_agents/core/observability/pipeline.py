"""The pipeline's observation points: one call at each stage sets its metrics, span and log ids.

Each function here is what one stage calls (a line at each point, so the stages stay
readable): the job runner (:func:`observed_job`), the turn (:func:`observed_turn_job`,
:func:`describe_turn`, :func:`turn_outcome`), the model call (:func:`observed_chat`), the knowledge search
(:func:`observed_retrieval`), a tool call (:func:`observed_tool`), a send
(:func:`observed_send`). The spans follow OpenTelemetry's GenAI semantic conventions:
``invoke_agent {agent}``, ``chat {model}``, ``execute_tool {tool}``, ``retrieval``.

A turn answers every unanswered message of its conversation, which may have come in several
webhooks: its span is linked to each webhook's span (an inbound message carries its
webhook's ``traceparent`` in ``meta``) rather than parented by one. Jobs queued inside a
span (a turn's sends, a tool's job) carry it in their payload (``trace``) and continue it.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from callable_agents.core.observability import metrics
from callable_agents.core.observability.logs import bind_log_context, log_context, reset_log_context
from callable_agents.core.observability.tracing import (
    capture_content,
    context_from_headers,
    context_of,
    current_traceparent,
    links_to,
    span,
    tracing_enabled,
)

if TYPE_CHECKING:
    from callable_agents.core.contracts.jobs import JobHandler
    from callable_agents.core.models import Job
    from callable_agents.core.runtime import Runtime

T = TypeVar("T")


class _HasMeta(Protocol):
    @property
    def meta(self) -> dict[str, Any]: ...


InboundT = TypeVar("InboundT", bound=_HasMeta)

TRACE_KEY = "trace"  # in a job's payload: the traceparent of the span that queued it
TRACEPARENT_META = "traceparent"  # in an inbound message's meta: its webhook's span
PROVIDER = "openai"  # the chat models' provider (gen_ai.provider.name)


def traced_payload(payload: dict[str, Any]) -> dict[str, Any]:
    """``payload`` with the current span's traceparent, when tracing is on (else itself)."""
    if not tracing_enabled():
        return payload
    traceparent = current_traceparent()
    return payload if traceparent is None else {**payload, TRACE_KEY: traceparent}


def traced_inbound(inbound: InboundT) -> InboundT:
    """An inbound message (a dataclass with ``meta``) carrying its webhook's traceparent in
    ``meta``, when tracing is on (else itself): the turn that answers it links to it."""
    if not tracing_enabled():
        return inbound
    traceparent = current_traceparent()
    if traceparent is None:
        return inbound
    return dataclasses.replace(inbound, meta={**inbound.meta, TRACEPARENT_META: traceparent})  # type: ignore[type-var]  # typeshed wants a DataclassInstance bound; callers pass dataclasses


# --- channel requests ---------------------------------------------------------------------


class ChannelRequests:
    """ASGI middleware for ``/channels/{kind}/...`` (webhooks, chat calls): the channel's
    kind in the log context and, when tracing is on, a server span continuing the caller's
    ``traceparent``, named by route (``POST /channels/{kind}``), never by id."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if scope["type"] != "http" or not path.startswith("/channels/"):
            await self.app(scope, receive, send)
            return
        kind = path[len("/channels/"):].split("/", 1)[0]
        token = bind_log_context(channel=kind)
        try:
            if not tracing_enabled():
                await self.app(scope, receive, send)
                return
            method = scope.get("method", "")
            with span(
                f"{method} /channels/{kind}",
                {"http.request.method": method, "url.path": path, "callable.channel": kind},
                kind=SpanKind.SERVER,
                parent=context_from_headers(scope.get("headers") or []),
            ) as current:

                async def recording_send(message: Message) -> None:
                    if current is not None and message["type"] == "http.response.start":
                        status = int(message["status"])
                        current.set_attribute("http.response.status_code", status)
                        if status >= 500:
                            current.set_status(Status(StatusCode.ERROR))
                    await send(message)

                await self.app(scope, receive, recording_send)
        finally:
            reset_log_context(token)


# --- jobs -------------------------------------------------------------------------------------


@contextmanager
def observed_job(job_id: int, kind: str, workspace_id: str, payload: dict[str, Any]) -> Iterator[None]:
    """Around one job run: its ids in the log context, and a span continuing the trace that
    queued it (its payload's ``trace``), when there is one."""
    with log_context(job_id=job_id, job_kind=kind, workspace_id=workspace_id):
        parent = context_of(payload.get(TRACE_KEY)) if tracing_enabled() else None
        if parent is None:
            yield
            return
        with span(f"job {kind}", {"callable.job.kind": kind, "callable.job.id": job_id}, kind=SpanKind.CONSUMER, parent=parent):
            yield


# --- the turn ---------------------------------------------------------------------------------


class TurnObservation:
    """What the turn tells its job's observation once it knows (:func:`describe_turn`)."""

    def __init__(self, current: Span | None) -> None:
        self.span = current
        self.channel = "unknown"
        self.outcome = "skipped"  # nothing to answer, unless the turn says otherwise


_TURN: ContextVar[TurnObservation | None] = ContextVar("callable_turn_observation", default=None)


def observed_turn_job(handler: JobHandler) -> JobHandler:
    """The ``turn`` job's handler inside an ``invoke_agent`` span, timed: the turn names its
    agent, channel and outcome through :func:`describe_turn` and :func:`turn_outcome`."""

    async def run(runtime: Runtime, job: Job) -> None:
        started = time.monotonic()
        token = bind_log_context()
        with span("invoke_agent", {"gen_ai.operation.name": "invoke_agent", "gen_ai.provider.name": PROVIDER}) as current:
            observation = TurnObservation(current)
            observed = _TURN.set(observation)
            try:
                await handler(runtime, job)
            except BaseException:
                observation.outcome = "error"
                raise
            finally:
                _TURN.reset(observed)
                reset_log_context(token)
                if current is not None:
                    current.set_attribute("callable.turn.outcome", observation.outcome)
                metrics.observe_turn(observation.channel, observation.outcome, time.monotonic() - started)

    return run


def describe_turn(
    *, agent: str, agent_id: str, channel: str, channel_id: str, conversation_id: str, inbound_meta: Sequence[Any]
) -> None:
    """The turn's agent, channel and conversation, once loaded: on its span (linked to the
    webhooks of the messages it answers), in the log context and in its metrics' labels."""
    bind_log_context(channel=channel, channel_id=channel_id, conversation_id=conversation_id)
    observation = _TURN.get()
    if observation is None:
        return
    observation.channel = channel
    current = observation.span
    if current is None:
        return
    current.update_name(f"invoke_agent {agent}")
    current.set_attributes(
        {"gen_ai.agent.name": agent, "gen_ai.agent.id": agent_id, "gen_ai.conversation.id": conversation_id,
         "callable.channel": channel}
    )
    for link in links_to([meta.get(TRACEPARENT_META) for meta in inbound_meta if isinstance(meta, dict)]):
        current.add_link(link.context)


def turn_outcome(outcome: str) -> None:
    """How the turn ended (answered, fallback, handed_off, offline, ...), for its metrics and span."""
    observation = _TURN.get()
    if observation is not None:
        observation.outcome = metrics.label(outcome)


# --- model, retrieval, tools ------------------------------------------------------------------


def model_name(model: Any) -> str:
    """The name a chat model was configured with (OpenAI's ``model_name``, others' ``model``)."""
    return str(getattr(model, "model_name", None) or getattr(model, "model", None) or "unknown")


async def observed_chat(model: Any, agent: str, call: Callable[[], Awaitable[T]], prompt: Sequence[Any]) -> T:
    """One chat model call (``call``): ``chat {model}``, its duration and tokens counted."""
    name = model_name(model)
    started = time.monotonic()
    with span(
        f"chat {name}",
        {"gen_ai.operation.name": "chat", "gen_ai.provider.name": PROVIDER, "gen_ai.request.model": name},
        kind=SpanKind.CLIENT,
    ) as current:
        if current is not None and capture_content():
            current.set_attribute("gen_ai.input.messages", _messages_json(prompt))
        try:
            message = await call()
        except Exception:
            metrics.observe_model(name, "error", time.monotonic() - started)
            raise
        metrics.observe_model(name, "ok", time.monotonic() - started)
        usage = getattr(message, "usage_metadata", None) or {}
        prompt_tokens, completion_tokens = int(usage.get("input_tokens") or 0), int(usage.get("output_tokens") or 0)
        metrics.count_tokens(agent, name, prompt_tokens, completion_tokens)
        if current is not None:
            response = getattr(message, "response_metadata", None) or {}
            current.set_attribute("gen_ai.usage.input_tokens", prompt_tokens)
            current.set_attribute("gen_ai.usage.output_tokens", completion_tokens)
            if response.get("model_name"):
                current.set_attribute("gen_ai.response.model", str(response["model_name"]))
            if response.get("finish_reason"):
                current.set_attribute("gen_ai.response.finish_reasons", [str(response["finish_reason"])])
            if capture_content():
                current.set_attribute("gen_ai.output.messages", _messages_json([message]))
        return message


async def observed_retrieval(search: Callable[[str], Awaitable[T]], query: str) -> T:
    """The knowledge search of a turn: a ``retrieval`` span with the number of passages found."""
    with span("retrieval", {"gen_ai.operation.name": "retrieval"}) as current:
        found = await search(query)
        if current is not None:
            current.set_attribute("callable.retrieval.passages", len(found) if isinstance(found, Sequence) else 0)
            if capture_content():
                current.set_attribute("gen_ai.retrieval.query.text", query)
        return found


async def observed_tool(name: str, call_id: str, arguments: Any, call: Awaitable[T]) -> T:
    """One tool call: ``execute_tool {tool}`` and its outcome counted (ok, error)."""
    with span(
        f"execute_tool {name}",
        {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": name, "gen_ai.tool.call.id": call_id,
         "gen_ai.tool.type": "function"},
    ) as current:
        if current is not None and capture_content():
            current.set_attribute("gen_ai.tool.call.arguments", _json(arguments))
        try:
            result = await call
        except Exception:
            metrics.count_tool_call(name, "error")
            raise
        metrics.count_tool_call(name, "ok")
        return result


def count_unknown_tool() -> None:
    """The model called a tool the turn does not have (its name is not a label: free text)."""
    metrics.count_tool_call("unknown", "unknown")


# --- sends ------------------------------------------------------------------------------------


async def observed_send(channel: str, message_id: int, call: Awaitable[T]) -> T:
    """One delivery through a channel's ``send``: a span, the message in the log context, and
    the outcome counted by status (a :class:`SendError`: failed or retry, with its code)."""
    from callable_agents.core.contracts.channels import SendError

    with log_context(message_id=message_id), span(
        f"send {channel}", {"callable.channel": channel, "callable.message.id": message_id}, kind=SpanKind.PRODUCER
    ) as current:
        try:
            result = await call
        except SendError as exc:
            metrics.count_send(channel, "retry" if exc.transient else "failed")
            if exc.code:
                metrics.count_provider_error(channel, exc.code)
            if current is not None:
                current.set_status(Status(StatusCode.ERROR, f"send error {exc.code}"))
            raise
        status = str(getattr(result, "status", "") or "sent")
        metrics.count_send(channel, status)
        return result


def _json(value: Any) -> str:
    import json

    return json.dumps(value, default=str, ensure_ascii=False)


def _messages_json(messages: Sequence[Any]) -> str:
    return _json([{"role": getattr(m, "type", "?"), "content": getattr(m, "content", m)} for m in messages])
