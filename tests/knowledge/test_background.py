"""Background indexing (what a server request uses) and the knowledge-base service functions
the dashboard added: rename, the agents that use a knowledge base, delete refused while used."""

from __future__ import annotations

import asyncio
import time

import pytest

from callable_agents.core.errors import Conflict, InvalidInput
from callable_agents.core.knowledge import (
    BackgroundIndexer,
    agents_using_knowledge_base,
    create_knowledge_base,
    delete_knowledge_base,
    get_knowledge_base,
    get_source,
    index_in_background,
    indexing_progress,
    refresh_in_background,
    rename_knowledge_base,
)
from callable_agents.core.models import Source
from callable_agents.core.store.agents import create_or_update_agent
from tests.knowledge.conftest import KnowledgeEnv, Response, TestSite, html


async def wait_for(env: KnowledgeEnv, source_id: str, status: str, timeout: float = 30) -> Source:
    deadline = time.monotonic() + timeout
    while True:
        async with env.runtime.db.sessions() as session:
            source = await get_source(session, env.workspace_id, source_id)
        if source.status == status:
            return source
        assert time.monotonic() < deadline, (source.status, source.error)
        await asyncio.sleep(0.05)


async def test_sources_index_in_the_background_with_progress_and_the_index_updates(env: KnowledgeEnv) -> None:
    first = await env.add("text", location="Hours", title="Hours", content=b"We open at nine on weekdays.")
    second = await env.add("text", location="Cakes", title="Cakes", content=b"Cakes need two days' notice.")
    index_in_background(env.runtime, env.workspace_id, [first.id, second.id, first.id])  # queued once
    indexer = BackgroundIndexer.of(env.runtime)
    seen = []
    deadline = time.monotonic() + 30
    while indexer.running or indexer.is_queued(first.id) or indexer.is_queued(second.id):
        seen.extend(p.stage for p in (indexer.progress(first.id), indexer.progress(second.id)) if p)
        assert time.monotonic() < deadline
        await asyncio.sleep(0)
    ready = await wait_for(env, first.id, "ready")
    assert ready.chunk_count == 1
    await wait_for(env, second.id, "ready")
    assert {"loading", "embedding"} <= set(seen)
    assert indexer.progress(first.id) is None  # finished: no progress kept
    assert indexing_progress(env.runtime, ready) is None
    [best] = await env.search("when do you open?", k=1)
    assert "nine" in best.text


async def test_refresh_in_background_queues_what_refresh_would(env: KnowledgeEnv) -> None:
    with TestSite() as site:
        site.routes["/menu"] = Response(status=404, body=b"gone", content_type="text/plain")
        url = await env.add("url", location=site.url("/menu"))
        text = await env.add("text", location="Hours", title="Hours", content=b"Open at nine.")
        index_in_background(env.runtime, env.workspace_id, [url.id, text.id])
        assert "404" in ((await wait_for(env, url.id, "failed")).error or "")
        await wait_for(env, text.id, "ready")
        site.routes["/menu"] = html("Menu", "<p>Rye bread costs four dollars.</p>")
        # Only the URL is re-loaded: it is refreshable (and failed); the ready text is neither.
        assert await refresh_in_background(env.runtime, env.workspace_id, knowledge_base_id=env.knowledge_base_id) == [url.id]
        await wait_for(env, url.id, "ready")
        assert await refresh_in_background(env.runtime, env.workspace_id, source_ids=[text.id]) == [text.id]


async def test_a_source_cut_off_at_shutdown_goes_back_to_pending(env: KnowledgeEnv) -> None:
    with TestSite() as site:
        site.routes["/slow"] = Response(body=html("Slow", "<p>Slow page.</p>").body, delay=3)
        source = await env.add("url", location=site.url("/slow"))
        index_in_background(env.runtime, env.workspace_id, [source.id])
        await wait_for(env, source.id, "indexing")
        await BackgroundIndexer.of(env.runtime).aclose()
        await wait_for(env, source.id, "pending", timeout=5)  # the refresh loop takes it up again


async def test_rename_and_delete_only_when_no_agent_uses_it(env: KnowledgeEnv) -> None:
    runtime, workspace_id = env.runtime, env.workspace_id
    async with runtime.db.session() as session:
        await create_knowledge_base(session, workspace_id, "menu", runtime=runtime)
        with pytest.raises(Conflict, match="name: knowledge base 'menu' already exists"):
            await rename_knowledge_base(session, workspace_id, env.knowledge_base_id, "menu")
        with pytest.raises(InvalidInput, match="name: expected a knowledge base name"):
            await rename_knowledge_base(session, workspace_id, env.knowledge_base_id, "  ")
    async with runtime.db.session() as session:
        renamed = await rename_knowledge_base(session, workspace_id, env.knowledge_base_id, "faq")
        assert renamed.id == env.knowledge_base_id and renamed.name == "faq"
        await create_or_update_agent(
            session, runtime, workspace_id, {"name": "desk", "system_prompt": "Help.", "knowledge_bases": ["faq"]}
        )
        assert await agents_using_knowledge_base(session, workspace_id, env.knowledge_base_id) == ["desk"]
    async with runtime.db.session() as session:
        with pytest.raises(Conflict, match="used by agent\\(s\\) desk"):
            await delete_knowledge_base(session, workspace_id, "faq", if_unused=True)
    async with runtime.db.session() as session:
        assert (await get_knowledge_base(session, workspace_id, "faq")).id == env.knowledge_base_id
        await delete_knowledge_base(session, workspace_id, "menu", if_unused=True)
        await delete_knowledge_base(session, workspace_id, "faq")  # the CLI's delete: not checked
