"""The agent: a LangGraph ``StateGraph`` with nodes ``retrieve → reason ⇄ tools → respond``.

Per-run dependencies (the agent, its retriever, chat models, tools, the channel's
capabilities) travel in the run context (:class:`AgentContext`), never in globals, so one
compiled graph serves every agent and channel. When a run's context carries no
dependencies (LangGraph Studio, ``langgraph dev``), they are resolved from the workspace and
agent names in the context (see :mod:`callable_agents.studio`).

State is bounded: ``respond`` removes messages beyond :data:`HISTORY_MESSAGES` so a
conversation's checkpoint does not grow with its length, and the prompt is trimmed to a
token budget.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, TypedDict

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import (
    AIMessage,
    AnyMessage,
    BaseMessage,
    HumanMessage,
    RemoveMessage,
    SystemMessage,
    ToolMessage,
    trim_messages,
)
from langchain_core.tools import BaseTool
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.runtime import Runtime

from callable_agents.core.contracts.channels import ChannelCapabilities
from callable_agents.core.reply import as_dialect, shape_reply

log = logging.getLogger(__name__)

HISTORY_MESSAGES = 24  # messages kept in the checkpointed state
PROMPT_TOKEN_BUDGET = 6_000  # history + passages; the static prefix comes on top
PASSAGE_CHAR_LIMIT = 1_200
DEFAULT_MAX_TOOL_ROUNDS = 4
DEFAULT_FALLBACK = "Sorry, I can't answer that right now. Please try again in a moment, or ask to talk to a person."
OFFLINE_LABEL = "(offline mode: answered from the knowledge base)"
NO_ANSWER = "I don't know that, and I'd rather not guess. Would you like me to connect you with a person?"

Search = Callable[[str], Awaitable[Sequence[Any]]]


class AgentState(TypedDict, total=False):
    """What the graph checkpoints per conversation."""

    messages: Annotated[list[AnyMessage], add_messages]
    passages: list[dict[str, Any]]  # retrieved for the current turn
    tool_rounds: int
    reply: list[str]  # the shaped parts of this turn's reply
    outcome: str  # answered | no_answer | fallback | tool_limit | handed_off | offline


@dataclass
class TurnDeps:
    """Everything one run needs, resolved before the run by the pipeline (or Studio)."""

    agent: Any  # an AgentSnapshot: name, system_prompt, business_info, model_settings, greeting, fallback_message
    capabilities: ChannelCapabilities
    search: Search | None = None
    models: Sequence[BaseChatModel] = ()  # primary first; empty = offline mode
    tools: Sequence[BaseTool] = ()
    effects: list[dict[str, Any]] = field(default_factory=list)
    channel_kind: str = "page"


@dataclass
class AgentContext:
    """The run context. ``deps`` is injected by the pipeline; Studio passes only names."""

    workspace: str = "demo"
    agent: str = "assistant"
    channel_kind: str = "page"
    deps: TurnDeps | None = None


DepsResolver = Callable[[AgentContext], Awaitable[TurnDeps]]
_resolver: list[DepsResolver] = []


def set_deps_resolver(resolver: DepsResolver) -> None:
    """How runs without injected deps (Studio) get theirs."""
    _resolver[:] = [resolver]


async def deps_of(runtime: Runtime[AgentContext]) -> TurnDeps:
    context = runtime.context or AgentContext()
    if context.deps is None:
        if not _resolver:
            raise RuntimeError("no TurnDeps in the run context and no resolver set: pass context=AgentContext(deps=...)")
        context.deps = await _resolver[0](context)
    return context.deps


# --------------------------------------------------------------------------- helpers


def _text_of(message: BaseMessage) -> str:
    content = message.content
    if isinstance(content, str):
        return content
    return " ".join(part.get("text", "") for part in content if isinstance(part, dict) and part.get("type") == "text")


def latest_customer_text(messages: Sequence[BaseMessage]) -> str:
    """The customer's messages since the agent last spoke (a coalesced burst), joined."""
    collected: list[str] = []
    for message in reversed(messages):
        if isinstance(message, HumanMessage):
            collected.append(_text_of(message))
        elif isinstance(message, AIMessage):
            break
    return "\n".join(reversed(collected)).strip()


def _max_tool_rounds(agent: Any) -> int:
    settings = getattr(agent, "model_settings", None) or {}
    value = settings.get("max_tool_rounds", DEFAULT_MAX_TOOL_ROUNDS)
    return value if isinstance(value, int) and value > 0 else DEFAULT_MAX_TOOL_ROUNDS


def _fallback_message(agent: Any) -> str:
    return (getattr(agent, "fallback_message", "") or "").strip() or DEFAULT_FALLBACK


def business_info_text(info: Mapping[str, Any]) -> str:
    labels = [
        ("name", "Business"),
        ("description", "About"),
        ("hours", "Opening hours"),
        ("address", "Address"),
        ("phone", "Phone"),
        ("email", "Email"),
        ("website", "Website"),
    ]
    lines = [f"- {label}: {info[key]}" for key, label in labels if info.get(key)]
    facts = info.get("facts") or []
    lines.extend(f"- {fact}" for fact in facts if isinstance(fact, str) and fact.strip())
    return "\n".join(lines)


CHANNEL_GUIDANCE: dict[str, str] = {
    "starred": (  # the dialect a messaging app channel declares (until guidance comes from capabilities)
        "You are replying on WhatsApp. Keep answers short and conversational. Use *bold* and _italic_ "
        "sparingly; no Markdown headings or tables."
    ),
    "markdown": "You are replying in a website chat. Short paragraphs; simple Markdown (bold, lists, links) is fine.",
    "plain": "Reply in plain text without formatting.",
}


def static_prompt(agent: Any, capabilities: ChannelCapabilities, tool_names: Sequence[str]) -> str:
    """The part of the prompt that is the same for every turn: first, so prompt caching works."""
    sections = [
        (getattr(agent, "system_prompt", "") or "You are a helpful assistant for this business.").strip(),
        "Business information:\n" + (business_info_text(getattr(agent, "business_info", {}) or {}) or "- (none given)"),
        "Grounding rules: answer only from the business information above and the knowledge passages given "
        "with each question. Cite passages by their [source id] when you use them. If the answer is not there, "
        "say you don't know and offer to connect the customer with a person. Never invent prices, times, "
        "policies or order details.",
        CHANNEL_GUIDANCE.get(as_dialect(capabilities.formatting).name, CHANNEL_GUIDANCE["markdown"]),
    ]
    if tool_names:
        sections.append(
            "You can use these tools: " + ", ".join(tool_names) + ". Use a tool when the customer needs what it does; "
            "if the customer asks for a person, use the handoff tool."
        )
    return "\n\n".join(sections)


def passages_prompt(passages: Sequence[Mapping[str, Any]]) -> str:
    if not passages:
        return (
            "Knowledge passages for the latest message: none matched. If the business information does not "
            "answer it, say you don't know and offer a person."
        )
    blocks = []
    for index, passage in enumerate(passages, start=1):
        where = passage.get("title") or "untitled"
        if passage.get("url"):
            where += f" ({passage['url']})"
        text = str(passage.get("text", ""))[:PASSAGE_CHAR_LIMIT]
        blocks.append(f"[{index}] {where}\n{text}")
    return "Knowledge passages for the latest message:\n\n" + "\n\n".join(blocks)


def _approx_tokens(messages: Sequence[BaseMessage]) -> int:
    return sum(len(_text_of(message)) // 4 + 4 for message in messages)


def build_prompt(state: AgentState, deps: TurnDeps) -> list[BaseMessage]:
    """System prompt (static) + trimmed history + the turn's passages, within the token budget."""
    tool_names = [tool.name for tool in deps.tools]
    passages = state.get("passages") or []
    context_message = SystemMessage(passages_prompt(passages))
    budget = max(500, PROMPT_TOKEN_BUDGET - _approx_tokens([context_message]))
    history = trim_messages(
        list(state.get("messages") or []),
        max_tokens=budget,
        token_counter=_approx_tokens,
        strategy="last",
        start_on="human",
        allow_partial=False,
    )
    return [SystemMessage(static_prompt(deps.agent, deps.capabilities, tool_names)), *history, context_message]


# --------------------------------------------------------------------------- offline mode

_PERSON_REQUEST = re.compile(
    r"\b(talk|speak|chat|connect|transfer|put)\b.{0,30}\b(person|human|someone|somebody|agent|representative|staff|manager|operator|real)\b"
    r"|\b(real|live)\s+(person|human|agent)\b|\bhuman\b|\brepresentative\b",
    re.IGNORECASE,
)
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_STOPWORDS = frozenset(
    "a an and are as at be but by can could do does did for from have has how i if in is it its me my of on or "
    "our please so that the their them there these this to us was we what when where which who why will with "
    "would you your yours hi hello hey thanks thank tell know about any".split()
)


def wants_a_person(text: str) -> bool:
    return bool(_PERSON_REQUEST.search(text))


def _content_words(text: str) -> set[str]:
    return {word for word in _WORD.findall(text.lower()) if word not in _STOPWORDS and len(word) > 1}


def _stem(word: str) -> str:
    return word[:-1] if len(word) > 3 and word.endswith("s") else word


def extractive_answer(question: str, passages: Sequence[Mapping[str, Any]]) -> str | None:
    """The best-matching sentences of the best passage, or None when nothing is relevant."""
    wanted = {_stem(word) for word in _content_words(question)}
    if not wanted:
        return None
    best: tuple[float, str] | None = None
    for passage in passages[:4]:
        sentences = re.split(r"(?<=[.!?])\s+|\n+", str(passage.get("text", "")))
        scored = []
        for position, sentence in enumerate(sentences):
            words = {_stem(word) for word in _content_words(sentence)}
            overlap = len(wanted & words)
            if overlap:
                scored.append((overlap, -position, sentence.strip()))
        if not scored:
            continue
        scored.sort(reverse=True)
        top = sorted(scored[:2], key=lambda item: -item[1])
        coverage = sum(item[0] for item in scored[:2]) / len(wanted)
        if best is None or coverage > best[0]:
            best = (coverage, " ".join(item[2] for item in top))
    if best is None or best[0] < 0.34:
        return None
    return best[1]


def offline_reply(state: AgentState, deps: TurnDeps) -> AIMessage:
    """Offline mode: route person requests to the handoff tool, else answer extractively."""
    messages = state.get("messages") or []
    if messages and isinstance(messages[-1], ToolMessage):
        return AIMessage(content="")  # the tool's own effect (e.g. handoff notice) is the reply
    question = latest_customer_text(messages)
    handoff = next((tool for tool in deps.tools if _tool_type(tool) == "handoff"), None)
    if handoff is not None and wants_a_person(question):
        return AIMessage(
            content="",
            tool_calls=[{"name": handoff.name, "args": {"reason": "The customer asked to talk to a person."}, "id": "offline-handoff"}],
        )
    answer = extractive_answer(question, state.get("passages") or [])
    if answer is None:
        return AIMessage(content=NO_ANSWER, response_metadata={"outcome": "no_answer"})
    return AIMessage(content=f"{answer}\n\n_{OFFLINE_LABEL}_", response_metadata={"outcome": "offline"})


def _tool_type(tool: BaseTool) -> str | None:
    metadata = tool.metadata or {}
    return metadata.get("callable_tool_type") or tool.name


# --------------------------------------------------------------------------- nodes


async def retrieve(state: AgentState, runtime: Runtime[AgentContext]) -> dict[str, Any]:
    deps = await deps_of(runtime)
    query = latest_customer_text(state.get("messages") or [])
    passages: list[dict[str, Any]] = []
    if deps.search is not None and query:
        for found in await deps.search(query):
            citation = found.citation() if hasattr(found, "citation") else {}
            passages.append({**citation, "text": found.text, "score": float(found.score)})
    return {"passages": passages, "tool_rounds": 0, "reply": [], "outcome": ""}


async def reason(state: AgentState, runtime: Runtime[AgentContext]) -> dict[str, Any]:
    deps = await deps_of(runtime)
    if not deps.models:
        return {"messages": [offline_reply(state, deps)]}
    prompt = build_prompt(state, deps)
    for model in deps.models:  # the primary, then the fallback model
        runnable = model.bind_tools(list(deps.tools)) if deps.tools else model
        try:
            message = await runnable.ainvoke(prompt)
            return {"messages": [message]}
        except Exception as exc:  # provider error or timeout: try the next, then the fallback message
            log.warning("chat model %s failed: %s", getattr(model, "model_name", "?"), type(exc).__name__)
    return {
        "messages": [AIMessage(content=_fallback_message(deps.agent), response_metadata={"outcome": "fallback"})],
        "outcome": "fallback",
    }


def after_reason(state: AgentState, runtime: Runtime[AgentContext]) -> Literal["tools", "respond"]:
    messages = state.get("messages")
    last = messages[-1] if messages else None
    if isinstance(last, AIMessage) and last.tool_calls:
        return "tools"
    return "respond"


async def tools(state: AgentState, runtime: Runtime[AgentContext]) -> dict[str, Any]:
    deps = await deps_of(runtime)
    last = state["messages"][-1]
    assert isinstance(last, AIMessage)
    rounds = state.get("tool_rounds", 0) + 1
    if rounds > _max_tool_rounds(deps.agent):
        # Answer every pending call so the history stays valid, then give up on tools.
        results = [
            ToolMessage(content="Not run: the tool-round limit was reached.", tool_call_id=call["id"], name=call["name"])
            for call in last.tool_calls
        ]
        return {"messages": results, "tool_rounds": rounds, "outcome": "tool_limit"}
    by_name = {tool.name: tool for tool in deps.tools}
    results = []
    for call in last.tool_calls:
        tool = by_name.get(call["name"])
        if tool is None:
            content = f"Unknown tool {call['name']!r}; available: {', '.join(by_name) or 'none'}."
        else:
            try:
                content = str(await tool.ainvoke(call["args"]))
            except Exception as exc:  # a tool bug must not break the conversation
                log.exception("tool %s failed", call["name"])
                content = f"The tool failed ({type(exc).__name__}). Tell the customer you couldn't complete it."
        results.append(ToolMessage(content=content, tool_call_id=call["id"], name=call["name"]))
    return {"messages": results, "tool_rounds": rounds}


def after_tools(state: AgentState, runtime: Runtime[AgentContext]) -> Literal["reason", "respond"]:
    return "respond" if state.get("outcome") == "tool_limit" else "reason"


async def respond(state: AgentState, runtime: Runtime[AgentContext]) -> dict[str, Any]:
    deps = await deps_of(runtime)
    messages = list(state.get("messages") or [])
    last = messages[-1] if messages else None
    outcome = state.get("outcome") or ""
    updates: list[AnyMessage] = []
    if outcome == "tool_limit" or not isinstance(last, AIMessage):
        text = _fallback_message(deps.agent)
        outcome = outcome or "fallback"
        fallback_message = AIMessage(content=text, response_metadata={"outcome": outcome})
        updates.append(fallback_message)
        messages.append(fallback_message)
    else:
        text = _text_of(last)
        outcome = outcome or str(last.response_metadata.get("outcome") or "answered")
    if any(effect.get("type") == "handoff" for effect in deps.effects):
        outcome = "handed_off"
        text = ""  # the pipeline sends the handoff notice; a model's paraphrase would repeat it
    citations = [p for p in (state.get("passages") or []) if p.get("url")] if outcome in ("answered", "offline") else []
    caps = deps.capabilities
    parts = (
        shape_reply(
            text,
            dialect=caps.formatting,
            max_length=caps.max_message_length,
            citations=citations,
            show_citations=caps.citations,
        )
        if text.strip()
        else []
    )
    removals = [RemoveMessage(id=m.id) for m in _beyond_history(messages) if m.id]
    return {"messages": [*updates, *removals], "reply": parts, "outcome": outcome}


def _beyond_history(messages: Sequence[BaseMessage]) -> list[BaseMessage]:
    """The oldest messages to drop so at most HISTORY_MESSAGES stay, starting on a human turn."""
    if len(messages) <= HISTORY_MESSAGES:
        return []
    cut = len(messages) - HISTORY_MESSAGES
    while cut < len(messages) and not isinstance(messages[cut], HumanMessage):
        cut += 1  # never leave a tool result or an AI reply without what it answers
    return list(messages[:cut])


def build_graph() -> StateGraph[AgentState, AgentContext, Any, Any]:
    """The uncompiled graph; compile with a checkpointer for conversations, without for Studio."""
    graph: StateGraph[AgentState, AgentContext, Any, Any] = StateGraph(AgentState, context_schema=AgentContext)
    graph.add_node("retrieve", retrieve)
    graph.add_node("reason", reason)
    graph.add_node("tools", tools)
    graph.add_node("respond", respond)
    graph.add_edge(START, "retrieve")
    graph.add_edge("retrieve", "reason")
    graph.add_conditional_edges("reason", after_reason, ["tools", "respond"])
    graph.add_conditional_edges("tools", after_tools, ["reason", "respond"])
    graph.add_edge("respond", END)
    return graph
