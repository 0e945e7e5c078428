"""OpenAI embeddings through the workspace's openai integration, against the loopback fake."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from callable_agents.core.errors import InvalidInput
from callable_agents.core.store.integrations import connect_integration
from callable_agents.core.knowledge import change_embedding_model, create_knowledge_base
from callable_agents.core.models import Workspace
from callable_agents.testing.openai_server import DEFAULT_EMBEDDING_DIMENSION, FakeOpenAI
from tests.knowledge.conftest import CSV_FILE, KnowledgeEnv


async def connect_openai(env: KnowledgeEnv, fake: FakeOpenAI, name: str, key: str) -> None:
    async with env.runtime.db.session() as session:
        workspace = await session.scalar(select(Workspace).where(Workspace.id == env.workspace_id))
        assert workspace is not None
        await connect_integration(
            session,
            env.runtime.vault,
            workspace,
            provider="openai",
            name=name,
            public={"base_url": fake.base_url},
            secrets={"api_key": key},
        )


async def test_openai_embeddings_use_the_workspace_integration(env: KnowledgeEnv) -> None:
    with FakeOpenAI(api_key="sk-shop-key") as fake:
        await connect_openai(env, fake, "openai", "sk-shop-key")
        async with env.runtime.db.session() as session:
            knowledge_base = await create_knowledge_base(
                session,
                env.workspace_id,
                "hosted",
                embedding_model="openai:text-embedding-3-small",
                runtime=env.runtime,
            )
        env.knowledge_base_id = knowledge_base.id
        source = await env.add_and_ingest("file", location="bikes.csv", content=CSV_FILE)
        assert source.status == "ready", source.error
        requests = fake.embedding_requests
        assert requests and all(
            r.bearer_token == "sk-shop-key" and r.model == "text-embedding-3-small" for r in requests
        )
        assert {len(chunk.embedding or b"") for chunk in await env.chunks()} == {DEFAULT_EMBEDDING_DIMENSION * 4}

        [best] = await env.search("Tide E-Bike electric", k=1, mode="dense")
        assert "Tide E-Bike" in best.text
        assert len(fake.embedding_requests) == len(requests) + 1  # the query, embedded remotely

        # Switching the knowledge base to the local model re-embeds locally, all at once.
        changed = await change_embedding_model(env.runtime, env.workspace_id, "hosted", "wordllama")
        assert (changed.embedding_model, changed.embedding_dim) == ("wordllama", 256)
        assert {len(chunk.embedding or b"") for chunk in await env.chunks()} == {256 * 4}


async def test_several_openai_integrations_must_be_named(env: KnowledgeEnv) -> None:
    with FakeOpenAI() as fake:
        await connect_openai(env, fake, "main", "sk-a")
        await connect_openai(env, fake, "backup", "sk-b")
        async with env.runtime.db.session() as session:
            await create_knowledge_base(session, env.workspace_id, "hosted", embedding_model="openai")
        with pytest.raises(
            InvalidInput,
            match=r"several openai integrations \(backup, main\); name one as openai:text-embedding-3-small@NAME",
        ):
            await change_embedding_model(env.runtime, env.workspace_id, "main", "openai")
        named = await change_embedding_model(
            env.runtime, env.workspace_id, "main", "openai:text-embedding-3-small@backup"
        )
        assert named.embedding_model == "openai:text-embedding-3-small@backup"
