"""Running a turn: the graph answers a conversation's unanswered customer messages, together, once.

The ``turn`` job's handler. It reads what the turn needs in one read (:mod:`.load`), applies
the channel's reply policy (:mod:`callable_agents.core.store.reply_policy`: withdrawn by a
newer message, :mod:`.superseding`; postponed to a quiet window; one message per turn),
runs the graph on the conversation's thread (streaming tokens to watchers on channels that
show them), and hands the graph's one :class:`~.result.TurnResult` to :mod:`.persist`,
which stores it and sends the replies.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Any

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage

from callable_agents.core.contracts.channels import ChannelType, TurnStarted
from callable_agents.core.conversation.streams import StreamHub
from callable_agents.core.conversation.turn.choices import with_pick_described
from callable_agents.core.conversation.turn.context import AgentContext
from callable_agents.core.conversation.turn.deps import resolve_turn_deps
from callable_agents.core.conversation.turn.load import TurnInputs, load_turn
from callable_agents.core.conversation.turn.memory import Memory
from callable_agents.core.conversation.turn.persist import persist_turn, store_superseded
from callable_agents.core.conversation.turn.result import TurnResult
from callable_agents.core.conversation.turn.superseding import NOT_WITHDRAWN, RunningTurns, Superseded
from callable_agents.core.jobs import Postpone, complete
from callable_agents.core.models import Job, Message, utcnow
from callable_agents.core.observability.pipeline import describe_turn, turn_outcome
from callable_agents.core.runtime import Runtime
from callable_agents.core.store.reply_policy import reply_policy_of

log = logging.getLogger(__name__)

# How long a turn that has its answer waits for its channel's "typing" announcement to
# finish before handing the answer on (then it stops waiting and cancels it).
ANNOUNCE_GRACE_SECONDS = 2.0


async def compiled_graph(runtime: Runtime) -> Any:
    """The agent graph compiled with the database checkpointer (one per process)."""
    graph = runtime.services.graph
    if graph is None:
        from callable_agents.core.conversation.turn.graph import build_graph

        memory = await Memory.of(runtime)
        graph = runtime.services.graph = build_graph().compile(checkpointer=memory.saver)
    return graph


async def run_turn(runtime: Runtime, job: Job) -> None:
    """Answer a conversation's unanswered customer messages, together, once (or, under the
    channel's ``queue`` reply policy, the oldest of them; under ``wait``, once the
    conversation has been quiet for the policy's window)."""
    conversation_id = job.payload["conversation_id"]
    loaded = await runtime.db.run(lambda session: load_turn(session, conversation_id), write=False)
    if loaded is None or not loaded.pending:
        await complete(runtime, job)
        return
    describe_turn(
        agent=loaded.agent.name,
        agent_id=loaded.agent.id,
        channel=loaded.channel.kind,
        channel_id=loaded.channel.id,
        conversation_id=conversation_id,
        inbound_meta=[m.meta for m in loaded.pending],
    )
    policy = reply_policy_of(loaded.channel.replies)
    if policy.strategy == "wait":
        quiet = (utcnow() - loaded.pending[-1].created_at).total_seconds()
        if quiet < policy.window_seconds:
            raise Postpone(policy.window_seconds - quiet)
    follow_up = False
    if policy.strategy == "queue" and len(loaded.pending) > 1:
        loaded = dataclasses.replace(loaded, pending=loaded.pending[:1])
        follow_up = True  # the next message gets the next turn
    # Only ``interrupt`` lets a newer message withdraw the turn; a take-over stops any turn.
    interrupt = policy.strategy == "interrupt"
    running = RunningTurns.of(runtime)
    with running.watch(conversation_id, loaded.pending[-1].id if interrupt else NOT_WITHDRAWN) as stopped:

        def may_show() -> bool:
            """Before a visitor sees the first token: from then on a newer message doesn't withdraw it."""
            if stopped.is_set():
                return False
            running.settle(conversation_id, stopped)
            return True

        try:
            try:
                final_state, shown = await _until(stopped, _run_graph(runtime, loaded, may_show))
            except Superseded:
                raise Superseded(running.reason(conversation_id, stopped)) from None
            running.release(conversation_id, stopped)  # storing: the result transaction decides
            turn_outcome(final_state["result"].outcome)
            await persist_turn(runtime, job, loaded, final_state, withdrawable=interrupt and not shown, follow_up=follow_up)
        except Superseded as halted:
            log.info("conversation %s: turn %s stopped (%s); it sends nothing", conversation_id, job.id, halted.reason)
            turn_outcome("superseded")
            await store_superseded(runtime, job, loaded, reason=halted.reason)


async def _until(stopped: asyncio.Event, run: Coroutine[Any, Any, _GraphRun]) -> _GraphRun:
    """``run``'s result, or :class:`Superseded` (``run`` cancelled: its model call with it)
    when the event is set first."""
    graph = asyncio.ensure_future(run)
    waiter = asyncio.ensure_future(stopped.wait())
    try:
        await asyncio.wait({graph, waiter}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
        if not graph.done():
            graph.cancel()
            await asyncio.gather(graph, return_exceptions=True)
    if graph.cancelled():
        raise Superseded()
    return graph.result()


_GraphRun = tuple[dict[str, Any], bool]  # the final state; whether a visitor was shown tokens


async def _run_graph(runtime: Runtime, loaded: TurnInputs, may_show: Callable[[], bool]) -> _GraphRun:
    """Run the graph on the conversation's thread: its final state, and whether tokens were
    published to watchers (channels that stream, once ``may_show`` allows: :func:`run_turn`).

    The channel's ``on_turn_started`` (a typing indicator) runs beside the graph, not before
    it: a messaging provider's indicator is a round trip of its own (an HTTPS call to the
    provider's API), which every reply used to wait for. The answer is handed on only once
    it is done (or :data:`ANNOUNCE_GRACE_SECONDS` later), so the indicator never follows the
    reply.
    """
    channel_type = runtime.plugins.channels.get(loaded.channel.kind)
    announcing = _start_announcing(runtime, channel_type, loaded)
    try:
        graph_run = await _run_graph_announced(runtime, loaded, may_show, channel_type)
    except BaseException:
        await _stop_announcing(announcing, grace=0)
        raise
    await _stop_announcing(announcing, grace=ANNOUNCE_GRACE_SECONDS)
    return graph_run


async def _run_graph_announced(
    runtime: Runtime, loaded: TurnInputs, may_show: Callable[[], bool], channel_type: ChannelType
) -> _GraphRun:
    """:func:`_run_graph` without the announcement."""
    channel, agent, conversation_id = loaded.channel, loaded.agent, loaded.conversation.id
    deps = await resolve_turn_deps(
        runtime,
        agent,
        capabilities=channel_type.capabilities,
        channel_kind=channel.kind,
        conversation_id=conversation_id,
    )
    graph = await compiled_graph(runtime)
    batch = sorted([*loaded.context, *loaded.pending], key=lambda m: m.id)
    hub = StreamHub.of(runtime)
    final_state: dict[str, Any] = {}
    accepts_images = bool(deps.models) and bool((agent.model_settings or {}).get("accepts_images"))
    pending = {m.id for m in loaded.pending}
    inputs = [
        await _as_graph_message(runtime, m, channel_type, accepts_images, loaded.offered if m.id in pending else ())
        for m in batch
    ]
    # Channels that show replies as they are written get the model's tokens; the others
    # (e.g. messaging apps) get one response, which costs less than a stream of chunks. Decided by the
    # channel, not by who is watching now: a visitor's stream may subscribe a moment after
    # the turn starts, and should still see the rest of the tokens.
    streaming = channel_type.capabilities.streaming
    shown = False
    async for mode, chunk in graph.astream(
        {"messages": inputs},
        {"configurable": {"thread_id": conversation_id}},
        context=AgentContext(
            workspace=channel.workspace_id,
            agent=agent.name,
            channel_kind=channel.kind,
            deps=deps,
            input_ids=frozenset(str(message.id) for message in inputs),
        ),
        stream_mode=["messages", "values"] if streaming else ["values"],
        # One checkpoint per turn: a turn that dies midway is rerun whole from its job.
        durability="exit",
    ):
        if mode == "values":
            final_state = chunk
        elif mode == "messages" and hub.has_subscribers(conversation_id):
            token, metadata = chunk
            if metadata.get("langgraph_node") == "reason" and isinstance(token.content, str) and token.content:
                if not shown and not may_show():
                    continue  # superseded: being cancelled
                shown = True
                hub.publish(conversation_id, {"type": "token", "text": token.content})
    if not isinstance(final_state.get("result"), TurnResult):
        raise RuntimeError(f"conversation {conversation_id}: the graph ended without a turn result")
    return final_state, shown


async def _as_graph_message(
    runtime: Runtime,
    message: Message,
    channel_type: ChannelType,
    accepts_images: bool,
    offered: Sequence[Mapping[str, str]],
) -> AnyMessage:
    """A stored message as the model sees it; a customer's media through the channel's
    ``media_input`` (image input, transcripts) or, without one, as a short note; a number or
    a title answering the ``offered`` choices with the choice it picks described
    (:mod:`.choices`; the stored message keeps what the customer typed)."""
    text = message.text or ""
    if message.author != "customer":
        return AIMessage(content=f"(A person from the team replied to the customer:) {text}", id=f"msg-{message.id}")
    text = with_pick_described(text, offered)
    if message.media and channel_type.media_input is not None:
        try:
            blocks = await channel_type.media_input(runtime, message, accepts_images)
        except Exception:  # the words still get answered if the media can't be read
            log.warning("channel %s: media_input failed for message %s", channel_type.name, message.id, exc_info=True)
            blocks = [{"type": "text", "text": _media_note(item)} for item in message.media]
        return HumanMessage(content=[{"type": "text", "text": text or "(no text)"}, *blocks], id=f"msg-{message.id}")
    notes = [_media_note(item) for item in message.media or []]
    content = "\n".join([text, *notes]).strip() or "(empty message)"
    return HumanMessage(content=content, id=f"msg-{message.id}")


def _media_note(item: dict[str, Any]) -> str:
    if item.get("note"):  # a channel may have described it already (transcript, caption)
        return str(item["note"])
    kind = str(item.get("content_type") or "").split("/")[0]
    if kind == "image":
        return "[The customer sent an image.]"
    if kind == "audio":
        return "[The customer sent a voice note; you can't listen to voice notes yet, say so politely.]"
    return f"[The customer sent a file ({item.get('content_type') or 'unknown type'}).]"


def _start_announcing(runtime: Runtime, channel_type: ChannelType, loaded: TurnInputs) -> asyncio.Task[None] | None:
    """The channel's ``on_turn_started`` as a task of its own (None without one)."""
    if channel_type.on_turn_started is None:
        return None
    started = channel_type.on_turn_started
    channel, conversation = loaded.channel, loaded.conversation
    turn = TurnStarted(
        workspace_id=channel.workspace_id,
        channel_id=channel.id,
        conversation_id=conversation.id,
        external_user_id=conversation.external_user_id,
        provider_message_ids=[m.provider_message_id for m in loaded.pending if m.provider_message_id],
    )

    async def announce() -> None:
        try:
            await started(runtime, turn)
        except Exception:  # showing "typing" is a nicety; the turn goes on
            log.warning("channel %s: on_turn_started failed", channel.kind, exc_info=True)

    return asyncio.create_task(announce(), name=f"turn-started:{conversation.id}")


async def _stop_announcing(announcing: asyncio.Task[None] | None, *, grace: float) -> None:
    """Let the announcement finish within ``grace`` seconds, else cancel it."""
    if announcing is None:
        return
    if grace > 0 and not announcing.done():
        await asyncio.wait({announcing}, timeout=grace)
    if not announcing.done():
        announcing.cancel()
        await asyncio.gather(announcing, return_exceptions=True)
