"""Ingestion lifecycle: statuses and counts, no repeated work, atomic replacement, deletion,
model changes, index caches shared through the database, and background freshness."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import numpy as np
import pytest
from langchain_core.embeddings import DeterministicFakeEmbedding
from sqlalchemy import select, update

from callable_agents.core.bootstrap import close_runtime, open_runtime, running
from callable_agents.core.config import Settings
from callable_agents.core.errors import Conflict, InvalidInput, NotFound
from callable_agents.core.contracts.hookspecs import hookimpl
from callable_agents.core.knowledge import (
    KnowledgeService,
    change_embedding_model,
    create_knowledge_base,
    get_knowledge_base,
    get_source,
    refresh_due_sources,
    remove_source,
    start_refresh_loop,
)
from callable_agents.core.knowledge.chunking import Chunker
from callable_agents.core.contracts.loaders import Document, EmbeddingsType
from callable_agents.core.models import KnowledgeBase, Source, utcnow
from tests.knowledge.conftest import CSV_FILE, KnowledgeEnv, TestSite, html, make_pdf

FAQ = (
    "# Repairs\n\nWe repair every kind of bicycle. A puncture repair costs $15 and is done while you wait.\n\n"
    "# Rentals\n\nCity bikes rent for $25 a day. Children's bikes are free with an adult rental.\n"
).encode()


async def test_statuses_counts_and_progress(env: KnowledgeEnv) -> None:
    added = await env.add("text", title="FAQ", location="FAQ", content=FAQ)
    assert (added.status, added.chunk_count, added.content_hash) == ("pending", 0, None)
    ready = await env.ingest(added.id)
    assert (ready.status, ready.error, ready.document_count, ready.chunk_count) == ("ready", None, 1, 2)
    assert ready.byte_count == len(FAQ) and ready.content_hash and ready.last_indexed_at is not None
    stages = [event.stage for event in env.events]
    assert stages[0] == "loading" and stages[-1] == "done"
    assert [(e.done, e.total) for e in env.events if e.stage == "embedding"] == [(0, 2), (2, 2)]

    chunks = await env.chunks(ready.id)
    assert [chunk.meta["heading"] for chunk in chunks] == ["Repairs", "Rentals"]
    assert all(len(chunk.embedding or b"") == 256 * 4 for chunk in chunks)
    vectors = np.stack([np.frombuffer(chunk.embedding or b"", dtype=np.float32) for chunk in chunks])
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    async with env.runtime.db.session() as session:
        knowledge_base = await get_knowledge_base(session, env.workspace_id, "main")
    assert (knowledge_base.embedding_model, knowledge_base.embedding_dim, knowledge_base.index_version) == (
        "wordllama",
        256,
        1,
    )


async def test_unchanged_content_does_no_embedding_work(env: KnowledgeEnv) -> None:
    source = await env.add_and_ingest("file", location="handbook.pdf", content=make_pdf())
    chunks_before = await env.chunks(source.id)
    embedded = env.embedded()
    assert embedded == source.chunk_count == 3

    again = await env.ingest(source.id)
    assert again.status == "ready" and env.embedded() == embedded
    assert env.events[-1].stage == "unchanged"
    assert [chunk.id for chunk in await env.chunks(source.id)] == [chunk.id for chunk in chunks_before]

    # Re-uploading the same bytes under the same name is no work either.
    await env.add_and_ingest("file", location="handbook.pdf", content=make_pdf(), replace=True)
    assert env.embedded() == embedded


async def test_an_edit_re_embeds_only_new_passages_and_replaces_atomically(env: KnowledgeEnv) -> None:
    source = await env.add_and_ingest("text", title="FAQ", location="FAQ", content=FAQ)
    before = {chunk.meta["heading"]: chunk for chunk in await env.chunks(source.id)}
    embedded = env.embedded()
    edited = FAQ.replace(b"$25 a day", b"$30 a day")
    await env.add_and_ingest("text", title="FAQ", location="FAQ", content=edited, replace=True)
    after = {chunk.meta["heading"]: chunk for chunk in await env.chunks(source.id)}
    assert env.embedded() - embedded == 1
    assert after["Repairs"].embedding == before["Repairs"].embedding
    assert "$30 a day" in after["Rentals"].text
    assert "$25 a day" in before["Rentals"].text and len(await env.chunks()) == 2
    [best] = await env.search("how much is a city bike per day", k=1)
    assert "$30 a day" in best.text


async def test_a_removed_source_is_gone_from_search_at_once(env: KnowledgeEnv) -> None:
    bikes = await env.add_and_ingest("file", location="bikes.csv", content=CSV_FILE)
    faq = await env.add_and_ingest("text", title="FAQ", location="FAQ", content=FAQ)
    assert {p.source_id for p in await env.search("road bike price $1299", k=4)} >= {bikes.id}
    async with env.runtime.db.session() as session:
        await remove_source(session, env.workspace_id, bikes.id)
    found = await env.search("road bike price $1299", k=4)
    assert found and {p.source_id for p in found} == {faq.id}
    assert await env.chunks(bikes.id) == []
    with pytest.raises(NotFound):
        await env.ingest(bikes.id)


async def test_search_filters_by_source_and_modes_differ(env: KnowledgeEnv) -> None:
    bikes = await env.add_and_ingest("file", location="bikes.csv", content=CSV_FILE)
    faq = await env.add_and_ingest("text", title="FAQ", location="FAQ", content=FAQ)
    only_faq = await env.search("bike price", k=5, source_ids=[faq.id])
    assert only_faq and {p.source_id for p in only_faq} == {faq.id}
    assert await env.search("bike price", source_ids=["no-such-source"]) == []
    for mode in ("hybrid", "dense", "keyword"):
        results = await env.search("Quay Runner", k=2, mode=mode)
        assert results[0].source_id == bikes.id and "Quay Runner" in results[0].text, mode
        assert [p.score for p in results] == sorted((p.score for p in results), reverse=True)
    assert await env.search("zzzqqq", mode="keyword") == []
    assert await env.search("   ") == []
    with pytest.raises(InvalidInput, match="mode: expected one of hybrid, dense, keyword"):
        await env.search("x", mode="fuzzy")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="k: expected 1 to 50"):
        await env.search("x", k=0)


async def test_changing_the_model_rebuilds_and_never_mixes(env: KnowledgeEnv) -> None:
    source = await env.add_and_ingest("text", title="FAQ", location="FAQ", content=FAQ)
    changed = await change_embedding_model(env.runtime, env.workspace_id, "main", "wordllama:64")
    assert (changed.embedding_model, changed.embedding_dim) == ("wordllama:64", 64)
    assert {len(chunk.embedding or b"") for chunk in await env.chunks()} == {64 * 4}
    index = await env.service.index_for(env.workspace_id, env.knowledge_base_id, changed.index_version, "wordllama:64")
    assert index.dense is not None and index.dense.dimension == 64
    [best] = await env.search("puncture repair", k=1)
    assert "$15" in best.text

    # New passages are embedded with the new model too.
    await env.add_and_ingest("file", location="bikes.csv", content=CSV_FILE)
    assert {len(chunk.embedding or b"") for chunk in await env.chunks()} == {64 * 4}
    assert (await env.ingest(source.id)).status == "ready"
    with pytest.raises(InvalidInput, match="unknown embeddings type 'nope'"):
        await change_embedding_model(env.runtime, env.workspace_id, "main", "nope")


async def test_another_process_sees_changes_through_the_database(env: KnowledgeEnv, kb_settings: Settings) -> None:
    await env.add_and_ingest("text", title="FAQ", location="FAQ", content=FAQ)
    other = await open_runtime(kb_settings)  # a second server process on the same database
    try:
        other_service = KnowledgeService.of(other)
        [first] = await other_service.search(env.workspace_id, [env.knowledge_base_id], "puncture", k=1)
        assert "$15" in first.text
        # It loaded the index the first process saved; it didn't rebuild it from rows.
        assert (other_service.index_loads, other_service.index_builds) == (1, 0)
        await other_service.search(env.workspace_id, [env.knowledge_base_id], "rentals", k=1)
        assert other_service.index_loads == 1  # cached: one cheap version check, no reload

        bikes = await env.add_and_ingest("file", location="bikes.csv", content=CSV_FILE)
        [found] = await other_service.search(env.workspace_id, [env.knowledge_base_id], "Tide E-Bike", k=1)
        assert found.source_id == bikes.id and other_service.index_loads == 2

        async with env.runtime.db.session() as session:
            await remove_source(session, env.workspace_id, bikes.id)
        # The first process did not rebuild; the other still never serves the removed rows.
        results = await other_service.search(env.workspace_id, [env.knowledge_base_id], "Tide E-Bike", k=3)
        assert bikes.id not in {p.source_id for p in results}
        assert other_service.index_builds == 1  # no saved copy of that version: built from rows
    finally:
        await close_runtime(other)


async def test_saved_index_files_are_per_version(env: KnowledgeEnv) -> None:
    await env.add_and_ingest("text", title="FAQ", location="FAQ", content=FAQ)
    await env.add_and_ingest("file", location="bikes.csv", content=CSV_FILE)
    directory = env.runtime.settings.data_dir / "indexes" / env.knowledge_base_id
    assert sorted(path.suffix for path in directory.iterdir()) == [".faiss", ".npz"]
    assert all(path.name.startswith("v2-") for path in directory.iterdir())
    (directory / next(p.name for p in directory.iterdir() if p.suffix == ".npz")).write_bytes(b"damaged")
    fresh = KnowledgeService(env.runtime)
    assert len(await fresh.search(env.workspace_id, [env.knowledge_base_id], "bike", k=2)) == 2
    assert (fresh.index_loads, fresh.index_builds) == (0, 1)  # damaged cache: rebuilt from the database


async def test_concurrent_ingestion_of_one_source_is_refused(env: KnowledgeEnv) -> None:
    source = await env.add("text", title="FAQ", location="FAQ", content=FAQ)
    async with env.runtime.db.session() as session:
        await session.execute(
            update(Source).where(Source.id == source.id).values(status="indexing", updated_at=utcnow())
        )
    with pytest.raises(Conflict, match="being indexed by another process"):
        await env.ingest(source.id)
    async with env.runtime.db.session() as session:  # an abandoned claim is taken over
        await session.execute(
            update(Source).where(Source.id == source.id).values(updated_at=utcnow() - timedelta(hours=1))
        )
    assert (await env.ingest(source.id)).status == "ready"


async def test_background_refresh_picks_up_due_and_pending_sources(env: KnowledgeEnv, site: TestSite) -> None:
    url_source = await env.add_and_ingest("url", location=site.url("/services"), refresh_interval_seconds=3600)
    assert url_source.next_refresh_at is not None
    assert url_source.next_refresh_at - url_source.last_indexed_at == timedelta(seconds=3600)  # type: ignore[operator]
    pending = await env.add("text", title="Parking", location="Parking", content=b"Free parking behind the shop.")
    assert await refresh_due_sources(env.runtime) == 0  # not due yet; pending only after a grace period

    site.routes["/services"] = html("Services | Harbour Bikes", "<h1>Services</h1><p>Tune-ups are $80 now.</p>")
    async with env.runtime.db.session() as session:
        await session.execute(
            update(Source)
            .where(Source.workspace_id == env.workspace_id)
            .values(next_refresh_at=utcnow() - timedelta(seconds=1), updated_at=utcnow() - timedelta(minutes=5))
        )
    task = start_refresh_loop(env.runtime, poll_seconds=0.05)
    try:
        for _ in range(200):
            async with env.runtime.db.session() as session:
                statuses = {s.id: s.status for s in (await session.scalars(select(Source))).all()}
            if statuses == {url_source.id: "ready", pending.id: "ready"} and site.requested("/services") >= 2:
                break
            await asyncio.sleep(0.05)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert statuses == {url_source.id: "ready", pending.id: "ready"}
    [best] = await env.search("tune-up price", k=1, source_ids=[url_source.id])
    assert "$80" in best.text
    async with env.runtime.db.session() as session:
        refreshed = await get_source(session, env.workspace_id, url_source.id)
    assert refreshed.next_refresh_at is not None and refreshed.next_refresh_at > utcnow() + timedelta(minutes=59)


async def test_refresh_interval_only_for_urls_and_not_too_short(env: KnowledgeEnv) -> None:
    with pytest.raises(InvalidInput, match="refresh_interval_seconds: text sources don't change by themselves"):
        await env.add("text", title="x", content=b"x", refresh_interval_seconds=3600)
    with pytest.raises(InvalidInput, match="refresh_interval_seconds: expected at least 300, got 10"):
        await env.add("url", location="https://example.com/", refresh_interval_seconds=10)
    with pytest.raises(InvalidInput, match="kind: unknown source kind 'fax'; available: file, text, url"):
        await env.add("fax", location="x")


async def test_an_unknown_embedding_model_fails_the_source_with_the_reason(kb_settings: Settings) -> None:
    from tests.knowledge.conftest import make_env

    async with running(kb_settings) as runtime:
        env = await make_env(runtime)
        source = await env.add("text", title="FAQ", location="FAQ", content=FAQ)
        async with runtime.db.session() as session:
            await session.execute(update(KnowledgeBase).values(embedding_model="nope"))
        failed = await env.ingest(source.id)
        assert (
            failed.status == "failed"
            and failed.error == "embedding_model: unknown embeddings type 'nope'; available: openai, wordllama"
        )


def test_chunker_bounds_overlap_and_headings() -> None:
    sentence = "The shop opens early on weekdays and stays open late on Thursdays for commuters."
    text = "# Hours\n\n" + " ".join([sentence] * 30) + "\n\n## Holidays\n\nClosed on public holidays."
    drafts = Chunker(max_tokens=64, overlap_tokens=20).split([Document(text, {"title": "Guide", "page": 4})])
    assert [d.meta["heading"] for d in drafts][-1] == "Hours > Holidays"
    assert all(d.meta["title"] == "Guide" and d.meta["page"] == 4 for d in drafts)
    body = [d for d in drafts if d.meta["heading"] == "Hours"]
    assert len(body) > 5 and all(d.token_count <= 64 for d in body)
    for previous, following in zip(body, body[1:], strict=False):  # consecutive passages overlap by a sentence
        assert previous.text.split("\n", 1)[1].endswith(sentence) and following.text.split("\n", 1)[1].startswith(
            sentence
        )
    assert drafts[-1].text == "Hours > Holidays\nClosed on public holidays."
    # One endless "sentence" is cut on token boundaries, each piece within bounds.
    [*pieces] = Chunker(max_tokens=32, overlap_tokens=8).split([Document("word " * 500)])
    assert len(pieces) > 10 and all(piece.token_count <= 32 for piece in pieces)


class HashingEmbeddingsPlugin:
    """A third-party plugin offering any LangChain ``Embeddings`` (here LangChain's own
    deterministic one), registered the way a package's entry point would be."""

    @hookimpl
    def register_embeddings(self) -> list[EmbeddingsType]:
        return [
            EmbeddingsType(
                name="hashing",
                description="Deterministic hashed vectors",
                factory=lambda request: DeterministicFakeEmbedding(size=int(request.model or 24)),
            )
        ]


async def test_any_langchain_embeddings_through_a_plugin(kb_settings: Settings) -> None:
    from tests.knowledge.conftest import make_env

    async with running(kb_settings, extra_plugins=[("hashing", HashingEmbeddingsPlugin())]) as runtime:
        env = await make_env(runtime, embedding_model="hashing:24")
        source = await env.add_and_ingest("file", location="bikes.csv", content=CSV_FILE)
        assert source.status == "ready", source.error
        assert {len(chunk.embedding or b"") for chunk in await env.chunks()} == {24 * 4}
        async with runtime.db.session() as session:
            knowledge_base = await get_knowledge_base(session, env.workspace_id, "main")
        assert (knowledge_base.embedding_model, knowledge_base.embedding_dim) == ("hashing:24", 24)
        # Random vectors rank nothing in particular, but keyword search still finds the row.
        [best] = await env.search("Quay Runner", k=1, mode="keyword")
        assert "Quay Runner" in best.text
        assert len(await env.search("Quay Runner", k=2, mode="dense")) == 2


async def test_search_across_knowledge_bases_with_different_models(env: KnowledgeEnv) -> None:
    faq = await env.add_and_ingest("text", title="FAQ", location="FAQ", content=FAQ)
    async with env.runtime.db.session() as session:
        small = await create_knowledge_base(session, env.workspace_id, "catalogue", embedding_model="wordllama:64")
    catalogue = KnowledgeEnv(env.runtime, env.workspace_id, small.id)
    bikes = await catalogue.add_and_ingest("file", location="bikes.csv", content=CSV_FILE)
    both = [env.knowledge_base_id, small.id]
    for query, expected in (("puncture repair while you wait", faq), ("Tide E-Bike electric price", bikes)):
        for mode in ("hybrid", "dense", "keyword"):
            [best] = await env.service.search(env.workspace_id, both, query, k=1, mode=mode)  # type: ignore[arg-type]
            assert (best.source_id, best.knowledge_base_id) == (expected.id, expected.knowledge_base_id), (query, mode)
    mixed = await env.service.search(env.workspace_id, both, "bike price", k=6)
    assert {p.knowledge_base_id for p in mixed} == set(both)
    assert await env.service.search(env.workspace_id, ["deleted-kb", small.id], "Quay Runner", k=1)
