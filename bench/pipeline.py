"""Pipeline benchmark: per-message overhead of the whole chat pipeline, beside a bare graph.

Prints, in one run on this machine (SQLite, a 10k-passage knowledge base, a scripted model
with no latency of its own — the loopback fake OpenAI server, in its own process,
answering at once):

* **pipeline**: one customer message through ``accept_inbound`` (message + job, one
  transaction) → the worker claims the turn → the agent graph (retrieve over the 10k
  passages, reason with the model, respond with shaping) with the SQLite checkpointer →
  reply + send job stored in one transaction → the send job delivers it. The model's HTTP
  round trip over loopback is counted as overhead, so the figure is conservative.
* **bare graph**: a LangGraph ``StateGraph`` with four trivial nodes and the same SQLite
  checkpointer (``AsyncSqliteSaver``), one ``ainvoke`` per message.

The pipeline runs three times:

* on the terminal channel, which delivers by storing (the reply is delivered when the turn
  commits it) and takes the model's answer in one response;
* on a channel that pushes each reply through its ``send`` (as WhatsApp does, here with a
  send that answers at once), which adds a send job and its transactions;
* on the widget channel with someone following each conversation's live events, as an
  open widget does: the model's answer is streamed and every token published.

Targets: pipeline p50 <= 15 ms and <= 3x the bare graph. These runs drive the worker
themselves (``Worker.drain``), so they measure the pipeline's work, not its scheduling.

Then **what a customer waits**, at the server's defaults (the channel's reply policy
``interrupt``: a turn starts as soon as its message is filed): ``callable serve`` in its own
process with its worker, a WhatsApp channel, the fake Twilio and the zero-latency fake
OpenAI server; each customer message is posted as a signed webhook after the previous
reply, and timed from the POST to the fake Twilio's Messages create of its reply. Target:
p50 under 100 ms. The same run reads the prompts the model received and prints the prompt
tokens per turn and the share of them in the stable prefix (the system message and the
tool definitions: byte-identical across turns and conversations, so provider prefix caching
applies), with tokens estimated as characters / 4 (``--tokens tiktoken`` counts with
tiktoken's o200k_base encoding instead, which tiktoken downloads unless it has it cached).

Every run prints the settings it changed from the server's defaults.

    .venv/bin/python bench/pipeline.py [--messages 300] [--conversations 20] [--chunks 10000]
        [--wait-messages 100] [--wait-conversations 10] [--tokens chars|tiktoken]
"""

from __future__ import annotations

import argparse
import asyncio
import operator
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated, TypedDict

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiosqlite  # noqa: E402
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver  # noqa: E402
from langgraph.graph import END, START, StateGraph  # noqa: E402

from callable_agents.core.bootstrap import close_runtime, open_runtime  # noqa: E402
from callable_agents.core.contracts.channels import ChannelCapabilities, ChannelType, OutboundMessage, SendResult  # noqa: E402
from callable_agents.core.contracts.hookspecs import hookimpl  # noqa: E402
from callable_agents.core.store.integrations import connect_integration  # noqa: E402
from callable_agents.core.jobs import Worker  # noqa: E402
from callable_agents.core.knowledge import add_source, create_knowledge_base, ingest_source  # noqa: E402
from callable_agents.core.models import Agent, Channel  # noqa: E402
from callable_agents.core.conversation.inbound import InboundMessage, accept_inbound  # noqa: E402
from callable_agents.core.conversation.jobs import register_conversation_jobs  # noqa: E402
from callable_agents.core.runtime import Runtime  # noqa: E402
from callable_agents.core.conversation.streams import StreamHub  # noqa: E402
from callable_agents.core.store.workspaces import create_workspace  # noqa: E402
from bench.settings_line import from_environment, from_settings, settings_line  # noqa: E402
from tests.conftest import make_settings  # noqa: E402

TOPICS = [
    "sourdough", "croissant", "baguette", "delivery", "catering", "wedding cake", "gluten free",
    "vegan", "opening hours", "loyalty card", "refund", "allergens", "coffee", "parking",
]
WORDS = (
    "fresh bake daily order pickup oven flour butter sugar custom design tier chocolate vanilla "
    "lemon almond hazelnut seasonal menu price tray box event office party weekend morning "
    "evening delivery zone fee minimum free postcode courier window slot deposit notice week"
).split()


def passage(rng: random.Random, index: int) -> str:
    topic = TOPICS[index % len(TOPICS)]
    body = " ".join(rng.choice(WORDS) for _ in range(60))
    return f"## {topic.title()} note {index}\n\nAbout our {topic}: {body}."


async def build_knowledge(runtime: Runtime, workspace_id: str, chunks: int) -> tuple[str, float]:
    rng = random.Random(7)
    per_source = 500
    async with runtime.db.session() as session:
        kb = await create_knowledge_base(session, workspace_id, "bench", runtime=runtime)
        source_ids = []
        for start in range(0, chunks, per_source):
            text = "\n\n".join(passage(rng, i) for i in range(start, min(chunks, start + per_source)))
            source = await add_source(
                session, workspace_id, kb.id, runtime=runtime, kind="text", title=f"notes {start}", content=text.encode()
            )
            source_ids.append(source.id)
    started = time.perf_counter()
    for source_id in source_ids:
        await ingest_source(runtime, workspace_id, source_id)
    return kb.id, time.perf_counter() - started


MODEL_SERVER = """
import sys, time
sys.path.insert(0, {root!r})
from callable_agents.testing.openai_server import FakeOpenAI
fake = FakeOpenAI(api_key="sk-bench", responder=lambda request: "Thanks! Here is what I found.").start()
print(fake.base_url, flush=True)
while True:
    time.sleep(3600)
"""


def start_model_server() -> tuple[subprocess.Popen[str], str]:
    """The scripted model in its own process, as a real model server would be: in-process it
    would compete with the pipeline for the interpreter lock and inflate the figures."""
    process = subprocess.Popen(
        [sys.executable, "-c", MODEL_SERVER.format(root=str(Path(__file__).resolve().parent.parent))],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    return process, process.stdout.readline().strip()


SETTINGS_USED: dict[str, object] = {}  # what the in-process runs changed from the defaults


class PushingChannel:
    """A channel plugin whose ``send`` pushes each reply (and returns at once)."""

    @staticmethod
    async def send(runtime: Runtime, message: OutboundMessage) -> SendResult:
        return SendResult(provider_message_id=f"push-{message.message_id}", status="sent")

    @hookimpl
    def register_channels(self) -> list[ChannelType]:
        from pydantic import BaseModel

        return [
            ChannelType(
                name="bench-push", description="pushes replies", config_schema=BaseModel,
                capabilities=ChannelCapabilities(formatting="plain"), send=self.send,
            )
        ]


async def pipeline_latencies(
    messages: int, conversations: int, chunks: int, channel_kind: str = "terminal", watch: bool = False
) -> tuple[list[float], int, float]:
    """``watch``: someone follows each conversation's live events (as an open widget does)."""
    data_dir = Path(tempfile.mkdtemp(prefix="callable-bench-"))
    settings = make_settings(data_dir)
    SETTINGS_USED.update(from_settings(settings))
    runtime = await open_runtime(settings, migrate=True, extra_plugins=[("bench-push", PushingChannel())])
    model_server, model_url = start_model_server()
    try:
        register_conversation_jobs(runtime)
        async with runtime.db.session() as session:
            workspace = await create_workspace(session, runtime.vault, "Bench")
            await connect_integration(
                session, runtime.vault, workspace, provider="openai", name="openai",
                public={"base_url": model_url}, secrets={"api_key": "sk-bench"},
            )
        kb_id, ingest_seconds = await build_knowledge(runtime, workspace.id, chunks)
        async with runtime.db.session() as session:
            agent = Agent(
                workspace_id=workspace.id, name="bench", system_prompt="You answer questions about the bakery.",
                business_info={"name": "Bench Bakery"}, knowledge_base_ids=[kb_id],
                model_settings={"integration": "openai", "model": "gpt-bench", "max_retries": 0},
            )
            session.add(agent)
            await session.flush()
            channel = Channel(workspace_id=workspace.id, kind=channel_kind, name="bench", agent_id=agent.id)
            session.add(channel)
        worker = Worker(runtime)
        rng = random.Random(11)
        latencies = []
        warmup = 10
        watchers: dict[str, asyncio.Task[None]] = {}
        for index in range(messages + warmup):
            question = f"Do you have {rng.choice(TOPICS)} on {rng.choice(WORDS)}?"
            user = f"bench-user-{index % conversations}"
            started = time.perf_counter()
            accepted = await accept_inbound(runtime, channel, InboundMessage(external_user_id=user, text=question))
            if watch and accepted.conversation_id not in watchers:
                watchers[accepted.conversation_id] = asyncio.create_task(follow(runtime, accepted.conversation_id))
                await asyncio.sleep(0)  # subscribed before the turn runs
            await worker.drain(lanes=[accepted.conversation_id, f"send:{accepted.conversation_id}"])
            if index >= warmup:
                latencies.append((time.perf_counter() - started) * 1000)
        for task in watchers.values():
            task.cancel()
        await asyncio.gather(*watchers.values(), return_exceptions=True)
        return latencies, messages + warmup, ingest_seconds
    finally:
        model_server.terminate()
        model_server.wait()
        await close_runtime(runtime)


async def follow(runtime: Runtime, conversation_id: str) -> None:
    """Take a conversation's live events (tokens, messages) as a widget's event stream does."""
    async with StreamHub.of(runtime).subscribe(conversation_id) as queue:
        while True:
            await queue.get()


class BareState(TypedDict):
    messages: Annotated[list[str], operator.add]


async def bare_graph_latencies(messages: int, conversations: int) -> list[float]:
    def node(name: str):  # type: ignore[no-untyped-def]
        async def run(state: BareState) -> dict[str, list[str]]:
            return {"messages": [name]} if name == "respond" else {}

        return run

    graph = StateGraph(BareState)
    for name in ("retrieve", "reason", "tools", "respond"):
        graph.add_node(name, node(name))
    graph.add_edge(START, "retrieve")
    graph.add_edge("retrieve", "reason")
    graph.add_edge("reason", "tools")
    graph.add_edge("tools", "respond")
    graph.add_edge("respond", END)
    path = Path(tempfile.mkdtemp(prefix="callable-bench-bare-")) / "bare.db"
    connection = await aiosqlite.connect(path)
    await connection.execute("PRAGMA journal_mode=WAL")
    await connection.execute("PRAGMA synchronous=NORMAL")
    saver = AsyncSqliteSaver(connection)
    await saver.setup()
    compiled = graph.compile(checkpointer=saver)
    latencies = []
    try:
        for index in range(messages + 10):
            started = time.perf_counter()
            config = {"configurable": {"thread_id": f"bare-{index % conversations}"}}
            await compiled.ainvoke({"messages": [f"message {index}"]}, config)
            if index >= 10:
                latencies.append((time.perf_counter() - started) * 1000)
    finally:
        await connection.close()
    return latencies


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


# --- what a customer waits, at the server's defaults ----------------------------------------


def customer_wait(messages: int, conversations: int) -> tuple[list[float], list[object], dict[str, str]]:
    """Milliseconds from each webhook POST to its reply's Messages create at the fake Twilio,
    one message at a time; the model's requests; the server's environment."""
    import httpx

    from bench.processes import free_port, stop
    from bench.webhook import ACCOUNT, OPENAI_KEY, TOKEN, prepare, signed_requests, start_server
    from callable_agents.testing.openai_server import FakeOpenAI
    from callable_agents.testing.twilio_server import FakeTwilio

    reply = "Thanks! We open at 7:00 from Monday to Saturday and close at 18:00."
    with FakeTwilio() as twilio, FakeOpenAI(api_key=OPENAI_KEY, responder=lambda request: reply) as openai, \
            tempfile.TemporaryDirectory() as tmp:
        twilio.add_account(ACCOUNT, TOKEN)
        setup = prepare(Path(tmp) / "data", None, twilio.base_url, openai.base_url)
        port = free_port()
        server = start_server(setup.env, port)
        latencies: list[float] = []
        warmup = min(3, messages)
        try:
            url = f"http://127.0.0.1:{port}/channels/whatsapp/{setup.channel_id}/inbound"
            requests = signed_requests(setup.channel_id, messages + warmup, customers=conversations)
            with httpx.Client(timeout=10) as client:
                for index, (body, headers) in enumerate(requests):
                    creates = len(_creates(twilio))
                    sent = time.time()
                    response = client.post(url, content=body, headers={**headers, "Content-Type": "application/x-www-form-urlencoded"})
                    if response.status_code != 200:
                        raise SystemExit(f"webhook answered {response.status_code}: {response.text[:200]}")
                    deadline = time.monotonic() + 30
                    while len(found := _creates(twilio)) <= creates:
                        if time.monotonic() > deadline:
                            raise SystemExit(f"no reply to message {index} within 30 s")
                        time.sleep(0.001)
                    if index >= warmup:
                        latencies.append((found[creates].time - sent) * 1000)
        finally:
            stop(server)
        return latencies, openai.chat_requests[warmup:], setup.env


def _creates(twilio: object) -> list[object]:
    return [r for r in twilio.requests if r.method == "POST" and r.path.endswith("/Messages.json")]  # type: ignore[attr-defined]


def token_counter(kind: str) -> tuple[object, str]:
    """A function counting a text's tokens, and what it is."""
    if kind == "tiktoken":
        import tiktoken

        encoding = tiktoken.get_encoding("o200k_base")
        return (lambda text: len(encoding.encode(text))), "tiktoken o200k_base"
    return (lambda text: (len(text) + 3) // 4), "estimated as characters / 4"


def prompt_shares(requests: list[object], count: object) -> tuple[list[int], list[float], bool, dict[int, list[int]]]:
    """Per request: prompt tokens, the stable prefix's share; whether every prefix is the same
    bytes; prompt tokens by the turn's number in its conversation."""
    import json

    totals: list[int] = []
    shares: list[float] = []
    prefixes: set[str] = set()
    by_turn: dict[int, list[int]] = {}
    turns_seen: dict[str, int] = {}
    for request in requests:
        messages = request.messages  # type: ignore[attr-defined]
        tools = request.tools  # type: ignore[attr-defined]
        prefix = json.dumps(messages[0], sort_keys=True) + json.dumps(tools, sort_keys=True)
        rest = json.dumps(messages[1:], sort_keys=True)
        prefix_tokens, total = count(prefix), count(prefix) + count(rest)  # type: ignore[operator]
        prefixes.add(prefix)
        totals.append(total)
        shares.append(prefix_tokens / total)
        # A conversation is named by its first customer message (the bench's are distinct).
        first_user = next((m.get("content") for m in messages if m.get("role") == "user"), "")
        turn = turns_seen[str(first_user)] = turns_seen.get(str(first_user), 0) + 1
        by_turn.setdefault(turn, []).append(total)
    return totals, shares, len(prefixes) <= 1, by_turn


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=300)
    parser.add_argument("--conversations", type=int, default=20)
    parser.add_argument("--chunks", type=int, default=10_000)
    parser.add_argument("--wait-messages", type=int, default=100, help="messages timed as a customer waits (0: skip)")
    parser.add_argument("--wait-conversations", type=int, default=10)
    parser.add_argument("--tokens", choices=("chars", "tiktoken"), default="chars", help="how prompt tokens are counted")
    args = parser.parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    ours, model_calls, ingest_seconds = asyncio.run(pipeline_latencies(args.messages, args.conversations, args.chunks))
    pushed, _, _ = asyncio.run(pipeline_latencies(args.messages, args.conversations, args.chunks, "bench-push"))
    streamed, _, _ = asyncio.run(pipeline_latencies(args.messages, args.conversations, args.chunks, "widget", watch=True))
    bare = asyncio.run(bare_graph_latencies(args.messages, args.conversations))
    print(f"knowledge base: {args.chunks} passages ingested in {ingest_seconds:.1f} s; "
          f"{args.messages} messages over {args.conversations} conversations; {model_calls} turns per run")
    print(settings_line(SETTINGS_USED, note="the bench drives the worker itself (Worker.drain)"))
    print(f"{'':40}{'p50 ms':>10}{'p95 ms':>10}{'mean ms':>10}")
    rows = (
        ("pipeline, delivered by storing", ours),
        ("pipeline, pushed through send", pushed),
        ("pipeline, tokens streamed to a watcher", streamed),
        ("bare LangGraph, 4 nodes", bare),
    )
    for label, values in rows:
        print(f"{label:40}{percentile(values, 0.5):>10.2f}{percentile(values, 0.95):>10.2f}{statistics.mean(values):>10.2f}")
    for label, values in rows[:3]:
        ratio = percentile(values, 0.5) / percentile(bare, 0.5)
        met = percentile(values, 0.5) <= 15 and ratio <= 3
        print(f"{label} / bare (p50): {ratio:.2f}x   targets p50 <= 15 ms and <= 3x: {'met' if met else 'NOT met'}")
    if not args.wait_messages:
        return
    waits, requests, env = customer_wait(args.wait_messages, args.wait_conversations)
    print()
    print(f"what a customer waits: WhatsApp webhook POST -> the fake Twilio's Messages create of the reply, "
          f"{args.wait_messages} messages one after another over {args.wait_conversations} conversations, "
          "zero-latency model, one server process, SQLite")
    print(settings_line(from_environment(env)))
    p50 = percentile(waits, 0.5)
    print(f"{'webhook to send':40}{p50:>10.2f}{percentile(waits, 0.95):>10.2f}{statistics.mean(waits):>10.2f}"
          f"   target p50 < 100 ms: {'met' if p50 < 100 else 'NOT met'}")
    count, counted_how = token_counter(args.tokens)
    totals, shares, identical, by_turn = prompt_shares(requests, count)
    if totals:
        print(f"prompt tokens per turn ({counted_how}): p50 {percentile([float(t) for t in totals], 0.5):.0f}, "
              + ", ".join(f"turn {turn}: {statistics.mean(values):.0f}" for turn, values in sorted(by_turn.items())[:6]))
        print(f"stable prefix (system message + tool definitions): {percentile(shares, 0.5):.0%} of a prompt (p50), "
              f"byte-identical across all {len(totals)} prompts: {'yes' if identical else 'NO'}")


if __name__ == "__main__":
    main()
