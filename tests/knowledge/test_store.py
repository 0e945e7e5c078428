"""Knowledge-base data access on both backends: workspace isolation and input checks."""

from __future__ import annotations

import pytest

from callable_agents.core.errors import Conflict, InvalidInput, NotFound
from callable_agents.core.knowledge import (
    KnowledgeService,
    add_source,
    create_knowledge_base,
    delete_knowledge_base,
    find_source,
    get_knowledge_base,
    get_source,
    knowledge_base_stats,
    list_knowledge_bases,
    list_sources,
    remove_source,
)
from callable_agents.core.runtime import Runtime
from tests.knowledge.conftest import CSV_FILE, make_env


async def test_workspaces_never_see_each_others_knowledge(runtime: Runtime) -> None:
    shop = await make_env(runtime, "Harbour Bikes")
    rival = await make_env(runtime, "Rival Cycles")
    bikes = await shop.add_and_ingest("file", location="bikes.csv", content=CSV_FILE)
    assert bikes.status == "ready", bikes.error
    assert [p.source_id for p in await shop.search("Quay Runner road bike", k=1)] == [bikes.id]

    async with runtime.db.session() as session:
        with pytest.raises(NotFound, match="knowledge base .* not found in this workspace"):
            await get_knowledge_base(session, rival.workspace_id, shop.knowledge_base_id)
        with pytest.raises(NotFound):
            await get_source(session, rival.workspace_id, bikes.id)
        with pytest.raises(NotFound):
            await remove_source(session, rival.workspace_id, bikes.id)
        with pytest.raises(NotFound):
            await add_source(
                session, rival.workspace_id, shop.knowledge_base_id, runtime=runtime, kind="text", content=b"x"
            )
        assert [kb.name for kb in await list_knowledge_bases(session, rival.workspace_id)] == ["main"]
        assert await list_sources(session, rival.workspace_id) == []
    # Searching another workspace's knowledge base id finds nothing at all.
    service = KnowledgeService.of(runtime)
    assert await service.search(rival.workspace_id, [shop.knowledge_base_id], "Quay Runner road bike") == []
    with pytest.raises(NotFound):
        await rival.ingest(bikes.id)


async def test_knowledge_base_and_source_lifecycle(runtime: Runtime) -> None:
    env = await make_env(runtime)
    async with runtime.db.session() as session:
        with pytest.raises(Conflict, match="knowledge base 'main' already exists"):
            await create_knowledge_base(session, env.workspace_id, "main", runtime=runtime)
    async with runtime.db.session() as session:
        with pytest.raises(InvalidInput, match="name: expected a knowledge base name of 1-100 characters"):
            await create_knowledge_base(session, env.workspace_id, "  ")
        with pytest.raises(
            InvalidInput, match="embedding_model: unknown embeddings type 'bert'; available: openai, wordllama"
        ):
            await create_knowledge_base(session, env.workspace_id, "other", embedding_model="bert", runtime=runtime)
        with pytest.raises(InvalidInput, match="embedding_model: expected TYPE or TYPE:MODEL"):
            await create_knowledge_base(session, env.workspace_id, "other", embedding_model="Not A Model!")
        second = await create_knowledge_base(session, env.workspace_id, "other", embedding_model="wordllama:128")
    assert second.embedding_model == "wordllama:128"

    csv = await env.add_and_ingest("file", location="bikes.csv", content=CSV_FILE)
    failed = await env.add_and_ingest("file", location="broken.pdf", content=b"%PDF-1.4 broken")
    async with runtime.db.session() as session:
        stats = await knowledge_base_stats(session, env.workspace_id, env.knowledge_base_id)
        assert stats == {"pending": 0, "indexing": 0, "ready": 1, "failed": 1, "sources": 2, "chunks": 3}
        assert (await find_source(session, env.workspace_id, env.knowledge_base_id, "bikes.csv")).id == csv.id
        assert (await find_source(session, env.workspace_id, env.knowledge_base_id, failed.id)).location == "broken.pdf"
        with pytest.raises(NotFound, match="source 'menu.csv' not found in this knowledge base"):
            await find_source(session, env.workspace_id, env.knowledge_base_id, "menu.csv")
    async with runtime.db.session() as session:
        deleted = await delete_knowledge_base(session, env.workspace_id, "main")
    KnowledgeService.of(runtime).forget(deleted.id)
    assert await env.chunks() == []
    async with runtime.db.session() as session:
        assert await list_sources(session, env.workspace_id) == []
        assert [kb.name for kb in await list_knowledge_bases(session, env.workspace_id)] == ["other"]
    assert await env.search("Quay Runner") == []
