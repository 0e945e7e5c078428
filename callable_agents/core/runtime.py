"""The running process's shared parts, handed to plugins and request handlers.

:class:`Services` holds the long-lived helpers that parts create lazily and share (HTTP
client, knowledge index cache, checkpointer, compiled graph, inbound queue, worker, ...): one
typed attribute per core service, so a reader sees what a process holds and mypy checks
every use. Plugins keep theirs with :meth:`Services.shared`, keyed by their own class (core
names no plugin). Each part's ``X.of(runtime)`` creates its service on first use.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    import httpx
    from langchain_core.language_models import BaseChatModel
    from langgraph.graph.state import CompiledStateGraph
    from starlette.requests import HTTPConnection

    from callable_agents.core.config import Settings
    from callable_agents.core.conversation.inbound.queue import InboundQueue
    from callable_agents.core.conversation.inbound.writer import InboundWriter
    from callable_agents.core.conversation.streams import StreamHub
    from callable_agents.core.conversation.turn.context import AgentContext
    from callable_agents.core.conversation.turn.state import AgentState
    from callable_agents.core.conversation.turn.memory import Memory
    from callable_agents.core.db import Database
    from callable_agents.core.jobs import JobHandlers, Worker
    from callable_agents.core.knowledge.background import BackgroundIndexer
    from callable_agents.core.knowledge.search import KnowledgeService
    from callable_agents.core.plugins import Plugins
    from callable_agents.core.store.vault import Vault

ServiceT = TypeVar("ServiceT")

# An agent's chat models by (agent id, updated_at), with the monotonic time they were built.
ChatModelCache = dict[tuple[str, datetime], tuple[float, list["BaseChatModel"]]]


class Services:
    """The process's lazily created helpers; ``None`` until a part first asks for one.

    Whatever is set (an attribute, or a plugin's :meth:`shared` service) is remembered in
    the order it was created: :func:`~callable_agents.core.bootstrap.close_runtime` closes
    them in reverse order (``aclose`` or ``close`` when they have one).
    """

    http: httpx.AsyncClient | None = None
    knowledge: KnowledgeService | None = None
    knowledge_indexer: BackgroundIndexer | None = None
    stream_hub: StreamHub | None = None
    memory: Memory | None = None
    graph: CompiledStateGraph[AgentState, AgentContext, Any, Any] | None = None
    inbound_queue: InboundQueue | None = None
    inbound_writer: InboundWriter | None = None
    job_handlers: JobHandlers | None = None
    worker: Worker | None = None
    # Serialises the checkpointer's first opening (it is awaited, so two turns could race).
    memory_lock: asyncio.Lock
    chat_models: ChatModelCache

    def __init__(self) -> None:
        self._created: dict[str | type, object] = {}
        self._shared: dict[type, object] = {}
        self.memory_lock = asyncio.Lock()
        self.chat_models = {}

    def __setattr__(self, name: str, value: object) -> None:
        super().__setattr__(name, value)
        if not name.startswith("_"):
            self._created.pop(name, None)
            if value is not None:
                self._created[name] = value

    def shared(self, kind: type[ServiceT], create: Callable[[], ServiceT]) -> ServiceT:
        """The process's one ``kind`` (a plugin's own service class), made by ``create`` on first use."""
        found = self._shared.get(kind)
        if found is None:
            found = self._shared[kind] = self._created[kind] = create()
        assert isinstance(found, kind)  # keyed by its own class, so always true
        return found

    def created(self) -> Iterator[tuple[str, object]]:
        """``(name, service)`` of everything set so far, oldest first."""
        for key, service in list(self._created.items()):
            yield (key if isinstance(key, str) else key.__qualname__), service


@dataclass
class Runtime:
    """Settings, database, vault and plugins of one process (server, worker or CLI).

    ``services`` holds the long-lived helpers parts create lazily and share (see
    :class:`Services`); they are closed at shutdown.
    """

    settings: Settings
    db: Database
    vault: Vault
    plugins: Plugins
    services: Services = field(default_factory=Services)


def runtime_of(connection: HTTPConnection) -> Runtime:
    """The runtime of the app serving this request (set by the server's lifespan)."""
    runtime: Runtime = connection.app.state.runtime
    return runtime
