"""What one run of the agent graph gets: its dependencies (:class:`TurnDeps`) in the run context.

Per-run dependencies travel in the run context (:class:`AgentContext`), never in globals, so
one compiled graph serves every agent and channel. When a run's context carries none
(LangGraph Studio, ``langgraph dev``), they are resolved from the workspace and agent names
in the context by the resolver Studio sets (see :mod:`callable_agents.studio`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.tools import BaseTool
from langgraph.runtime import Runtime

from callable_agents.core.contracts.channels import ChannelCapabilities
from callable_agents.core.contracts.tools import OfflineRoute

Search = Callable[[str], Awaitable[Sequence[Any]]]


@dataclass
class TurnDeps:
    """Everything one run needs, resolved before the run by the turn code (or Studio)."""

    agent: Any  # an Agent row or snapshot: name, system_prompt, business_info, model_settings, fallback_message
    capabilities: ChannelCapabilities
    search: Search | None = None
    models: Sequence[BaseChatModel] = ()  # primary first; empty = offline mode
    tools: Sequence[BaseTool] = ()
    # Offline mode's routes, by tool name: which tool to call for which request.
    offline_routes: Mapping[str, OfflineRoute] = field(default_factory=dict)
    channel_kind: str = ""


@dataclass
class AgentContext:
    """The run context. ``deps`` is injected by the turn code; Studio passes only names."""

    workspace: str = "demo"
    agent: str = "assistant"
    channel_kind: str = ""  # empty: no channel's capabilities, the defaults
    deps: TurnDeps | None = None
    # The ids of the messages this run was given (``msg-<id>``): what a run that stored
    # nothing (killed, or superseded) left after them in the checkpoint is dropped.
    input_ids: frozenset[str] = frozenset()


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
