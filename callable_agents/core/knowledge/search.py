"""Retrieval: hybrid search (dense FAISS + BM25, fused by reciprocal rank) with citations.

:class:`KnowledgeService` is one per process (``runtime.services.knowledge``). It keeps
each knowledge base's :class:`KnowledgeIndex` in memory, tagged with the ``index_version``
it was built at. A search asks the database for the current versions (one small query); an
index whose version moved is replaced — from its saved copy when another process already
built it, else from the database rows — before searching. Passage texts are read from the
database for the final top-k only, so a deleted source can never be quoted.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from sqlalchemy import Row, Select, bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from callable_agents.core.errors import InvalidInput
from callable_agents.core.knowledge.chunking import ChunkDraft
from callable_agents.core.knowledge.embeddings import EmbeddingModel, EmbeddingModels
from callable_agents.core.knowledge.index import IndexRows, KnowledgeIndex, remove_saved
from callable_agents.core.models import Chunk, KnowledgeBase

if TYPE_CHECKING:
    from pathlib import Path

    from callable_agents.core.runtime import Runtime

log = logging.getLogger(__name__)

# A chunk as an index is built from it: id, source id, text, meta, embedding (float32 bytes).
ChunkRow = Row[int, str, str, dict[str, Any], bytes | None]

SearchMode = Literal["hybrid", "dense", "keyword"]
SEARCH_MODES: tuple[str, ...] = ("hybrid", "dense", "keyword")
MAX_K = 50
# Each ranker contributes this many candidates to the fusion.
CANDIDATES = 50
# Reciprocal rank fusion constant (Cormack et al. 2009): damps the weight of top ranks.
RRF_K = 60
# Rows read per query while building an index from the database.
BUILD_BATCH = 5000


@dataclass(frozen=True)
class Passage:
    """One retrieved passage with its score and where it came from."""

    chunk_id: int
    source_id: str
    knowledge_base_id: str
    text: str
    score: float
    title: str
    url: str | None
    page: int | None

    def citation(self) -> dict[str, Any]:
        return {"title": self.title, "url": self.url, "page": self.page, "source_id": self.source_id}


@dataclass(frozen=True)
class RankedChunk:
    chunk_id: int
    score: float


class KnowledgeService:
    """Per-process search over knowledge bases, with their index caches."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.models = EmbeddingModels(runtime)
        self.index_root: Path = runtime.settings.data_dir / "indexes"
        self._indexes: dict[str, KnowledgeIndex] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self.index_builds = 0  # indexes built from database rows (not loaded from disk)
        self.index_loads = 0  # indexes loaded from a saved copy

    @classmethod
    def of(cls, runtime: Runtime) -> KnowledgeService:
        service = runtime.services.knowledge
        if service is None:
            service = runtime.services.knowledge = cls(runtime)
        return service

    def close(self) -> None:
        self._indexes.clear()

    # ------------------------------------------------------------------ search

    async def search(
        self,
        workspace_id: str,
        knowledge_base_ids: Sequence[str],
        query: str,
        *,
        k: int = 4,
        source_ids: Sequence[str] | None = None,
        mode: SearchMode = "hybrid",
    ) -> list[Passage]:
        """The ``k`` best passages for ``query`` in the workspace's knowledge bases, best first.

        Unknown knowledge base ids (e.g. deleted ones an agent still lists) are ignored.
        ``source_ids`` restricts the search to those sources. Scores: cosine similarity for
        ``dense``, BM25 for ``keyword``, fused reciprocal-rank score for ``hybrid``.
        """
        if mode not in SEARCH_MODES:
            raise InvalidInput(f"mode: expected one of {', '.join(SEARCH_MODES)}, got {mode!r}")
        if not 1 <= k <= MAX_K:
            raise InvalidInput(f"k: expected 1 to {MAX_K}, got {k}")
        query = query.strip()
        if not query or not knowledge_base_ids:
            return []
        versions, _ = _search_statements()
        parameters = {"workspace_id": workspace_id, "knowledge_base_ids": list(knowledge_base_ids)}
        states = await self.runtime.db.run(lambda session: session.execute(versions, parameters).all(), write=False)
        indexes = [await self.index_for(workspace_id, kb_id, version, model) for kb_id, model, version in sorted(states)]
        indexes = [index for index in indexes if index.size]
        if not indexes:
            return []
        models: dict[str, EmbeddingModel] = {}
        remote_vectors: dict[str, np.ndarray] = {}
        if mode != "keyword":
            for name in {index.embedding_model for index in indexes}:
                model = await self.models.get(workspace_id, name)
                models[name] = model
                if not model.kind.local:  # a network call: awaited here, not in a worker thread
                    remote_vectors[name] = await model.embed_query(query)
        chosen = list(source_ids) if source_ids is not None else None
        ranked = await asyncio.to_thread(rank_passages, indexes, query, models, remote_vectors, k, chosen, mode)
        if not ranked:
            return []
        searched = [index.knowledge_base_id for index in indexes]
        return await self.runtime.db.run(
            lambda session: self._passages(session, workspace_id, searched, ranked, k), write=False
        )

    @staticmethod
    def _passages(
        session: Session, workspace_id: str, knowledge_base_ids: list[str], ranked: list[RankedChunk], k: int
    ) -> list[Passage]:
        """The ranked chunks still in the database, as passages, best first."""
        _, chunks = _search_statements()
        rows = session.execute(
            chunks,
            {
                "workspace_id": workspace_id,
                "knowledge_base_ids": knowledge_base_ids,
                "chunk_ids": [item.chunk_id for item in ranked],
            },
        )
        by_id = {row[0]: row for row in rows}
        passages: list[Passage] = []
        for item in ranked:
            row = by_id.get(item.chunk_id)
            if row is None:  # removed since the index was built
                continue
            chunk_id, source_id, knowledge_base_id, text, meta = row
            page = meta.get("page")
            passages.append(
                Passage(
                    chunk_id=int(chunk_id),
                    source_id=source_id,
                    knowledge_base_id=knowledge_base_id,
                    text=text,
                    score=float(item.score),
                    title=str(meta.get("title") or ""),
                    url=meta.get("url"),
                    page=int(page) if isinstance(page, int) else None,
                )
            )
            if len(passages) == k:
                break
        return passages

    # ------------------------------------------------------------------ index cache

    async def index_for(
        self, workspace_id: str, knowledge_base_id: str, version: int, embedding_model: str
    ) -> KnowledgeIndex:
        """The index of a knowledge base at ``version`` (or newer), loading or building it if needed."""
        cached = self._indexes.get(knowledge_base_id)
        if cached is not None and cached.version >= version and cached.embedding_model == embedding_model:
            return cached
        lock = self._locks.setdefault(knowledge_base_id, asyncio.Lock())
        async with lock:
            cached = self._indexes.get(knowledge_base_id)
            if cached is not None and cached.version >= version and cached.embedding_model == embedding_model:
                return cached
            loaded = await asyncio.to_thread(
                KnowledgeIndex.load, self.index_root, knowledge_base_id, version, embedding_model
            )
            if loaded is not None:
                self.index_loads += 1
            else:
                loaded = await self._build(workspace_id, knowledge_base_id)
            self._indexes[knowledge_base_id] = loaded
            return loaded

    async def ensure_current(self, workspace_id: str, knowledge_base_id: str) -> KnowledgeIndex | None:
        """Bring the cached index up to the database's version (after a batch of ingestions
        run with ``update_index=False``); None if the knowledge base is gone."""
        async with self.runtime.db.sessions() as session:
            state = await self._state(session, workspace_id, knowledge_base_id)
        if state is None:
            return None
        return await self.index_for(workspace_id, knowledge_base_id, state[2], state[1])

    async def refresh_index(self, workspace_id: str, knowledge_base_id: str) -> KnowledgeIndex:
        """Build the index from the database now (after this process changed the passages)."""
        lock = self._locks.setdefault(knowledge_base_id, asyncio.Lock())
        async with lock:
            built = await self._build(workspace_id, knowledge_base_id)
            self._indexes[knowledge_base_id] = built
            return built

    def forget(self, knowledge_base_id: str) -> None:
        """Drop a deleted knowledge base's cached and saved indexes."""
        self._indexes.pop(knowledge_base_id, None)
        remove_saved(self.index_root, knowledge_base_id)

    async def _build(self, workspace_id: str, knowledge_base_id: str) -> KnowledgeIndex:
        """Read the passages at one consistent version and build (and save) their index.

        The version is read before and after the rows; versions only grow and change in the
        transaction that changes rows, so equal readings mean the rows belong to that version.
        """
        started = time.perf_counter()
        while True:
            async with self.runtime.db.session() as session:
                before = await self._state(session, workspace_id, knowledge_base_id)
                if before is None:
                    return KnowledgeIndex.build(knowledge_base_id, -1, "", _empty_rows())
                rows = await self._rows(session, workspace_id, knowledge_base_id, before[2])
                after = await self._state(session, workspace_id, knowledge_base_id)
            if after == before:
                break
        _, model, version = before
        index = await asyncio.to_thread(self._build_and_save, knowledge_base_id, version, model, rows)
        self.index_builds += 1
        log.info(
            "built index of knowledge base %s v%s (%d passages) in %.2fs",
            knowledge_base_id,
            version,
            index.size,
            time.perf_counter() - started,
        )
        return index

    def _build_and_save(self, knowledge_base_id: str, version: int, model: str, rows: list[ChunkRow]) -> KnowledgeIndex:
        index = KnowledgeIndex.build(knowledge_base_id, version, model, index_rows(knowledge_base_id, rows))
        try:
            index.save(self.index_root)
        except OSError:  # the cache is an optimisation; searching still works from memory
            log.warning("could not save the index of knowledge base %s", knowledge_base_id, exc_info=True)
        return index

    @staticmethod
    async def _state(session: AsyncSession, workspace_id: str, knowledge_base_id: str) -> tuple[str, str, int] | None:
        row = (
            await session.execute(
                select(KnowledgeBase.id, KnowledgeBase.embedding_model, KnowledgeBase.index_version).where(
                    KnowledgeBase.workspace_id == workspace_id, KnowledgeBase.id == knowledge_base_id
                )
            )
        ).first()
        return (row[0], row[1], row[2]) if row is not None else None

    @staticmethod
    async def _rows(session: AsyncSession, workspace_id: str, knowledge_base_id: str, _version: int) -> list[ChunkRow]:
        """The knowledge base's chunk rows (id, source, text, meta, vector), in id order."""
        rows: list[ChunkRow] = []
        last_id = -1
        while True:  # keyset pages keep memory and statement size bounded
            batch = (
                await session.execute(
                    select(Chunk.id, Chunk.source_id, Chunk.text, Chunk.meta, Chunk.embedding)
                    .where(
                        Chunk.workspace_id == workspace_id,
                        Chunk.knowledge_base_id == knowledge_base_id,
                        Chunk.id > last_id,
                    )
                    .order_by(Chunk.id)
                    .limit(BUILD_BATCH)
                )
            ).all()
            rows.extend(batch)
            if len(batch) < BUILD_BATCH:
                return rows
            last_id = batch[-1][0]


def index_rows(knowledge_base_id: str, rows: Sequence[ChunkRow]) -> IndexRows:
    """What an index is built from, out of chunk rows (CPU work: runs in a worker thread)."""
    embedded = [(row, row[4]) for row in rows if row[4]]
    if not embedded:
        return _empty_rows()
    width = len(embedded[0][1])
    if any(len(vector) != width for _, vector in embedded):
        raise RuntimeError(f"knowledge base {knowledge_base_id} holds vectors of different widths")
    vectors = np.frombuffer(b"".join(vector for _, vector in embedded), dtype=np.float32).reshape(len(embedded), width // 4)
    return IndexRows(
        chunk_ids=np.asarray([row[0] for row, _ in embedded], dtype=np.int64),
        source_ids=[row[1] for row, _ in embedded],
        texts=[ChunkDraft(row[2], row[3], 0).indexed_text for row, _ in embedded],
        vectors=vectors,
    )


def _empty_rows() -> IndexRows:
    return IndexRows(np.zeros(0, np.int64), [], [], np.zeros((0, 0), np.float32))


@functools.cache
def _search_statements() -> tuple[Select[str, str, int], Select[int, str, str, str, dict[str, Any]]]:
    """The index-version check and the passage read, built once (building costs more than running them)."""
    workspace_id = bindparam("workspace_id", type_=KnowledgeBase.workspace_id.type)
    knowledge_base_ids = bindparam("knowledge_base_ids", expanding=True, type_=KnowledgeBase.id.type)
    versions = select(KnowledgeBase.id, KnowledgeBase.embedding_model, KnowledgeBase.index_version).where(
        KnowledgeBase.workspace_id == workspace_id, KnowledgeBase.id.in_(knowledge_base_ids)
    )
    chunks = select(Chunk.id, Chunk.source_id, Chunk.knowledge_base_id, Chunk.text, Chunk.meta).where(
        Chunk.workspace_id == workspace_id,
        Chunk.knowledge_base_id.in_(knowledge_base_ids),
        Chunk.id.in_(bindparam("chunk_ids", expanding=True, type_=Chunk.id.type)),
    )
    return versions, chunks


def rank_passages(
    indexes: list[KnowledgeIndex],
    query: str,
    models: dict[str, EmbeddingModel],
    remote_vectors: dict[str, np.ndarray],
    k: int,
    source_ids: list[str] | None,
    mode: SearchMode,
) -> list[RankedChunk]:
    """The best ``2k`` chunk ids across indexes (runs in a worker thread: it is all CPU).

    Twice ``k``, because a few may have been deleted since the index was built. Dense lists
    of indexes built by one model are merged by cosine score (comparable: one query vector),
    keyword lists by BM25 score (roughly comparable); hybrid fuses one dense ranking per
    model and the keyword ranking by reciprocal rank.
    """
    depth = max(CANDIDATES, 2 * k)
    query_vectors = dict(remote_vectors)
    dense: dict[str, list[tuple[float, int]]] = {}
    keyword: list[tuple[float, int]] = []
    for index in indexes:
        allowed = index.allowed(source_ids)
        if allowed is not None and not allowed.any():
            continue
        if mode != "keyword":
            vector = query_vectors.get(index.embedding_model)
            if vector is None:
                vector = query_vectors[index.embedding_model] = models[index.embedding_model].embed_query_sync(query)
            ids, scores = index.dense_search(vector, depth, allowed)
            dense.setdefault(index.embedding_model, []).extend(zip(scores.tolist(), ids.tolist(), strict=True))
        if mode != "dense":
            ids, scores = index.keyword_search(query, depth, allowed)
            keyword.extend(zip(scores.tolist(), ids.tolist(), strict=True))
    dense_rankings = [sorted(pairs, key=lambda pair: -pair[0]) for pairs in dense.values()]
    keyword.sort(key=lambda pair: -pair[0])
    if mode == "dense":
        merged = sorted((pair for ranking in dense_rankings for pair in ranking), key=lambda pair: -pair[0])
        return [RankedChunk(chunk_id, score) for score, chunk_id in merged[: 2 * k]]
    if mode == "keyword":
        return [RankedChunk(chunk_id, score) for score, chunk_id in keyword[: 2 * k]]
    rankings = [[chunk_id for _, chunk_id in ranking[:depth]] for ranking in dense_rankings]
    rankings.append([chunk_id for _, chunk_id in keyword[:depth]])
    return reciprocal_rank_fusion(rankings)[: 2 * k]


def reciprocal_rank_fusion(rankings: Sequence[Sequence[int]], constant: int = RRF_K) -> list[RankedChunk]:
    """Fuse ranked id lists: score(id) = sum of 1 / (constant + rank), rank from 1.

    Ties keep the order of the first list (dense), where an id is found there.
    """
    scores: dict[int, float] = {}
    first_seen: dict[int, tuple[int, int]] = {}
    for list_number, ranking in enumerate(rankings):
        for rank, chunk_id in enumerate(ranking, start=1):
            scores[chunk_id] = scores.get(chunk_id, 0.0) + 1.0 / (constant + rank)
            first_seen.setdefault(chunk_id, (list_number, rank))
    ordered = sorted(scores, key=lambda chunk_id: (-scores[chunk_id], first_seen[chunk_id]))
    return [RankedChunk(chunk_id, scores[chunk_id]) for chunk_id in ordered]
