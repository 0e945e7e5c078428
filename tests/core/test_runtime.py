"""The runtime's services: created on first use, one per process, closed newest first."""

from __future__ import annotations

from pathlib import Path

from callable_agents.core.bootstrap import close_runtime, open_runtime
from callable_agents.core.conversation.streams import StreamHub
from callable_agents.core.db import migrate_sync
from callable_agents.core.http_safety import shared_http_client
from callable_agents.core.knowledge.search import KnowledgeService
from tests.conftest import make_settings


CLOSED: list[str] = []


class Recorder:
    """A plugin's process-wide helper that notes when it is closed."""

    def __init__(self, name: str) -> None:
        self.name = name

    async def aclose(self) -> None:
        CLOSED.append(self.name)


class SyncRecorder:
    """One with a plain ``close``."""

    def close(self) -> None:
        CLOSED.append("sync")


async def test_services_are_created_once_and_closed_newest_first(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    migrate_sync(settings.resolved_database_url)
    runtime = await open_runtime(settings)
    CLOSED.clear()
    try:
        services = runtime.services
        assert services.knowledge is None and services.http is None
        knowledge = KnowledgeService.of(runtime)
        assert KnowledgeService.of(runtime) is knowledge and services.knowledge is knowledge
        client = shared_http_client(runtime)
        assert shared_http_client(runtime) is client
        first = services.shared(Recorder, lambda: Recorder("first"))
        assert services.shared(Recorder, lambda: Recorder("second")) is first
        hub = StreamHub.of(runtime)
        services.shared(SyncRecorder, SyncRecorder)
        names = [name for name, _ in services.created()]
        assert names.index("knowledge") < names.index("http") < names.index("Recorder") < names.index("stream_hub")
        assert dict(services.created())["stream_hub"] is hub
    finally:
        await close_runtime(runtime)
    assert client.is_closed
    assert CLOSED == ["sync", "first"]
    assert runtime.services.knowledge is None and runtime.services.http is None
