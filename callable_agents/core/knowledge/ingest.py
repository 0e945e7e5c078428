"""Ingestion: load -> normalise -> chunk -> embed -> store passages -> update the index.

A source is claimed (status ``indexing``) so two processes never index it at once. Its
loader's documents are hashed: an unchanged hash marks the source ready without any
further work. Otherwise passages are cut, and only passages whose text is new are embedded
(a passage that survives an edit keeps its vector). The source's old passages are replaced
by the new ones in one transaction that also bumps the knowledge base's ``index_version``.

A failure marks the source ``failed`` with the reason and leaves everything else —
including the source's previous passages, still searchable — as it was.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Literal

import numpy as np
from sqlalchemy import delete, insert, or_, select, update

from callable_agents.core.errors import CallableError, Conflict, NotFound
from callable_agents.core.knowledge.chunking import ChunkDraft, Chunker
from callable_agents.core.knowledge.embeddings import check_model_spec
from callable_agents.core.knowledge.search import KnowledgeService
from callable_agents.core.knowledge.store import STALE_CLAIM, get_knowledge_base, get_source, validate_options
from callable_agents.core.contracts.loaders import Document, LoadError, LoadRequest
from callable_agents.core.models import Chunk, KnowledgeBase, Source, utcnow

if TYPE_CHECKING:
    from callable_agents.core.runtime import Runtime

log = logging.getLogger(__name__)

# Part of every content hash: changing how text is chunked re-indexes everything once.
CHUNKING_VERSION = 1
MAX_ERROR_LENGTH = 1000
MODEL_CHANGE_RETRIES = 3

Stage = Literal["loading", "note", "chunking", "embedding", "storing", "done", "unchanged", "failed"]


@dataclass(frozen=True)
class IngestProgress:
    """A step of one source's ingestion, for progress bars and logs."""

    source_id: str
    stage: Stage
    done: int = 0
    total: int | None = None
    message: str = ""


ProgressCallback = Callable[[IngestProgress], None]


class _ModelChanged(Exception):
    """The knowledge base's embedding model changed while this source was being embedded."""


def content_hash(documents: Sequence[Document]) -> str:
    digest = hashlib.sha256(f"chunking:{CHUNKING_VERSION}\n".encode())
    for document in documents:
        metadata = {key: value for key, value in document.metadata.items() if key != "bytes"}
        digest.update(json.dumps([document.text, metadata], sort_keys=True, default=str).encode())
        digest.update(b"\x00")
    return digest.hexdigest()


def passage_hash(draft: ChunkDraft) -> str:
    """Identifies what a passage's vector was computed from."""
    return hashlib.sha256(draft.indexed_text.encode()).hexdigest()[:32]


def _chunk(documents: Sequence[Document]) -> tuple[list[ChunkDraft], list[str]]:
    drafts = Chunker().split(documents)
    return drafts, [passage_hash(draft) for draft in drafts]


async def ingest_source(
    runtime: Runtime,
    workspace_id: str,
    source_id: str,
    *,
    progress: ProgressCallback | None = None,
    update_index: bool = True,
) -> Source:
    """Index one source and return it with its new status, counts and error.

    Raises NotFound for an unknown source and Conflict when another process is indexing it;
    every problem with the source itself ends as status ``failed`` with the reason.
    ``update_index`` rebuilds this process's cached index (and its saved copy) at once.
    """

    def report(stage: Stage, done: int = 0, total: int | None = None, message: str = "") -> None:
        if progress is not None:
            progress(IngestProgress(source_id, stage, done, total, message))

    source, knowledge_base = await _claim(runtime, workspace_id, source_id)
    try:
        changed = await _ingest_claimed(runtime, source, knowledge_base, report)
    except asyncio.CancelledError:
        await asyncio.shield(_release(runtime, source))
        raise
    except Exception as exc:
        reason = str(exc) if isinstance(exc, CallableError) else f"unexpected error: {type(exc).__name__}: {exc}"
        if not isinstance(exc, CallableError):
            log.exception("indexing source %s (%s %s) failed", source.id, source.kind, source.location)
        reason = reason[:MAX_ERROR_LENGTH]
        report("failed", message=reason)
        return await _mark_failed(runtime, source, reason)
    if changed and update_index:
        try:
            await KnowledgeService.of(runtime).refresh_index(workspace_id, knowledge_base.id)
        except Exception:  # the passages are stored; any process rebuilds the cache when it searches
            log.exception("rebuilding the index of knowledge base %s failed", knowledge_base.id)
    async with runtime.db.session() as session:
        return await get_source(session, workspace_id, source_id)


async def _claim(runtime: Runtime, workspace_id: str, source_id: str) -> tuple[Source, KnowledgeBase]:
    now = utcnow()
    async with runtime.db.session() as session:
        source = await get_source(session, workspace_id, source_id, with_content=True)
        claimed = await session.execute(
            update(Source)
            .where(
                Source.workspace_id == workspace_id,
                Source.id == source_id,
                or_(Source.status != "indexing", Source.updated_at < now - STALE_CLAIM),
            )
            .values(status="indexing", updated_at=now)
            .execution_options(synchronize_session=False)
        )
        # An UPDATE's result is a CursorResult; AsyncSession.execute is typed as returning Result.
        if claimed.rowcount == 0:  # type: ignore[attr-defined]
            raise Conflict(f"source {source_id} is being indexed by another process; try again when it is done")
        knowledge_base = await get_knowledge_base(session, workspace_id, source.knowledge_base_id)
        session.expunge(source)
        session.expunge(knowledge_base)
    return source, knowledge_base


async def _release(runtime: Runtime, source: Source) -> None:
    """Give a source back (cancelled mid-way): pending, to be picked up again."""
    try:
        async with runtime.db.session() as session:
            await session.execute(
                update(Source)
                .where(Source.workspace_id == source.workspace_id, Source.id == source.id, Source.status == "indexing")
                .values(status="pending", updated_at=utcnow())
            )
    except Exception:
        log.exception("could not release source %s", source.id)


async def _mark_failed(runtime: Runtime, source: Source, reason: str) -> Source:
    now = utcnow()
    values: dict[str, object] = {"status": "failed", "error": reason, "updated_at": now}
    if source.refresh_interval_seconds:
        values["next_refresh_at"] = now + timedelta(seconds=source.refresh_interval_seconds)
    async with runtime.db.session() as session:
        await session.execute(
            update(Source).where(Source.workspace_id == source.workspace_id, Source.id == source.id).values(**values)
        )
        try:
            return await get_source(session, source.workspace_id, source.id)
        except NotFound:  # removed while it was being indexed
            source.status, source.error = "failed", reason
            return source


async def _ingest_claimed(
    runtime: Runtime,
    source: Source,
    knowledge_base: KnowledgeBase,
    report: Callable[..., None],
) -> bool:
    """Load, chunk, embed and store; True when the passages changed."""
    loader = runtime.plugins.loaders.get(source.kind)
    options = validate_options(loader, source.options).model_dump(mode="json")
    request = LoadRequest(
        runtime=runtime,
        workspace_id=source.workspace_id,
        source_id=source.id,
        kind=source.kind,
        location=source.location,
        title=source.title,
        options=options,
        content=source.content,
        note=lambda message: report("note", message=message),
    )
    documents: list[Document] = []
    report("loading", 0)
    async for document in loader.load(request):
        documents.append(document)
        report("loading", len(documents))
    if not any(document.text.strip() for document in documents):
        raise LoadError("no text found in this source")

    new_hash = await asyncio.to_thread(content_hash, documents)
    byte_count = len(source.content) if source.content is not None else _byte_count(documents)
    if new_hash == source.content_hash:
        await _mark_ready(runtime, source, byte_count=byte_count, document_count=len(documents))
        report("unchanged", message="content unchanged: nothing to re-index")
        return False

    report("chunking", 0, len(documents))
    drafts, hashes = await asyncio.to_thread(_chunk, documents)
    if not drafts:
        raise LoadError("no text found in this source")

    service = KnowledgeService.of(runtime)
    embedding_model = knowledge_base.embedding_model
    for _attempt in range(MODEL_CHANGE_RETRIES):
        vectors = await _vectors_for(runtime, service, source, embedding_model, drafts, hashes, report)
        report("storing", 0, len(drafts))
        try:
            await _store(
                runtime, source, embedding_model, drafts, hashes, vectors, new_hash, byte_count, len(documents)
            )
        except _ModelChanged as changed:
            embedding_model = str(changed)
            continue
        report("done", len(drafts), len(drafts))
        return True
    raise Conflict("the knowledge base's embedding model kept changing while this source was indexed; try again")


async def _vectors_for(
    runtime: Runtime,
    service: KnowledgeService,
    source: Source,
    embedding_model: str,
    drafts: list[ChunkDraft],
    hashes: list[str],
    report: Callable[..., None],
) -> np.ndarray:
    """Vectors for every draft: reused where the source already has that passage, else embedded."""
    model = await service.models.get(source.workspace_id, embedding_model)
    async with runtime.db.session() as session:
        knowledge_base = await get_knowledge_base(session, source.workspace_id, source.knowledge_base_id)
        rows = await session.execute(
            select(Chunk.meta, Chunk.embedding).where(
                Chunk.workspace_id == source.workspace_id, Chunk.source_id == source.id
            )
        )
        known: dict[str, bytes] = {}
        if knowledge_base.embedding_model == embedding_model and knowledge_base.embedding_dim:
            width = knowledge_base.embedding_dim * 4
            known = {
                meta["hash"]: vector for meta, vector in rows if meta.get("hash") and vector and len(vector) == width
            }
    missing = [index for index, digest in enumerate(hashes) if digest not in known]
    report("embedding", 0, len(missing))
    done = 0

    def advance(count: int) -> None:
        nonlocal done
        done += count
        report("embedding", done, len(missing))

    fresh = await model.embed_documents(
        [drafts[index].indexed_text for index in missing],
        token_ids=[drafts[index].token_ids for index in missing],
        on_batch=advance,
    )
    dimension = int(fresh.shape[1]) if missing else len(next(iter(known.values()))) // 4
    vectors = np.empty((len(drafts), dimension), dtype=np.float32)
    if missing:
        vectors[missing] = fresh
    for index, digest in enumerate(hashes):
        if digest in known:
            vectors[index] = np.frombuffer(known[digest], dtype=np.float32)
    return vectors


async def _store(
    runtime: Runtime,
    source: Source,
    embedding_model: str,
    drafts: list[ChunkDraft],
    hashes: list[str],
    vectors: np.ndarray,
    new_hash: str,
    byte_count: int,
    document_count: int,
) -> None:
    """Replace the source's passages and bump the index version, in one transaction."""
    workspace_id = source.workspace_id
    dimension = int(vectors.shape[1])
    rows = await asyncio.to_thread(_chunk_rows, source, drafts, hashes, vectors)
    async with runtime.db.session() as session:
        knowledge_base = await session.scalar(
            select(KnowledgeBase)
            .where(KnowledgeBase.workspace_id == workspace_id, KnowledgeBase.id == source.knowledge_base_id)
            .with_for_update()
        )
        if knowledge_base is None:
            raise NotFound("the knowledge base was deleted while this source was being indexed")
        if knowledge_base.embedding_model != embedding_model:
            raise _ModelChanged(knowledge_base.embedding_model)
        if knowledge_base.embedding_dim is None:
            knowledge_base.embedding_dim = dimension
        elif knowledge_base.embedding_dim != dimension:
            raise LoadError(
                f"the embedding model {embedding_model!r} now returns {dimension}-dimensional vectors but this "
                f"knowledge base's index has {knowledge_base.embedding_dim}: the model changed under the same name; "
                "switch the knowledge base to a model name of its own"
            )
        current = await session.scalar(
            select(Source).where(Source.workspace_id == workspace_id, Source.id == source.id).with_for_update()
        )
        if current is None:
            raise NotFound("the source was removed while it was being indexed")
        await session.execute(
            delete(Chunk)
            .where(Chunk.workspace_id == workspace_id, Chunk.source_id == source.id)
            .execution_options(synchronize_session=False)
        )
        await session.execute(insert(Chunk), rows)
        now = utcnow()
        current.status = "ready"
        current.error = None
        current.content_hash = new_hash
        current.chunk_count = len(drafts)
        current.document_count = document_count
        current.byte_count = byte_count
        current.last_indexed_at = now
        current.updated_at = now
        if current.refresh_interval_seconds:
            current.next_refresh_at = now + timedelta(seconds=current.refresh_interval_seconds)
        knowledge_base.index_version += 1
        knowledge_base.updated_at = now


def _chunk_rows(
    source: Source, drafts: list[ChunkDraft], hashes: list[str], vectors: np.ndarray
) -> list[dict[str, object]]:
    created_at = utcnow()
    return [
        {
            "workspace_id": source.workspace_id,
            "knowledge_base_id": source.knowledge_base_id,
            "source_id": source.id,
            "ordinal": ordinal,
            "text": draft.text,
            "meta": {**draft.meta, "hash": digest},
            "token_count": draft.token_count,
            "embedding": vectors[ordinal].tobytes(),
            "created_at": created_at,
        }
        for ordinal, (draft, digest) in enumerate(zip(drafts, hashes, strict=True))
    ]


async def _mark_ready(runtime: Runtime, source: Source, *, byte_count: int, document_count: int) -> None:
    now = utcnow()
    values: dict[str, object] = {
        "status": "ready",
        "error": None,
        "last_indexed_at": now,
        "updated_at": now,
        "byte_count": byte_count,
        "document_count": document_count,
    }
    if source.refresh_interval_seconds:
        values["next_refresh_at"] = now + timedelta(seconds=source.refresh_interval_seconds)
    async with runtime.db.session() as session:
        await session.execute(
            update(Source).where(Source.workspace_id == source.workspace_id, Source.id == source.id).values(**values)
        )


def _byte_count(documents: Sequence[Document]) -> int:
    fetched = [document.metadata.get("bytes") for document in documents]
    sizes = [size for size in fetched if isinstance(size, int)]
    if len(sizes) == len(fetched):
        return sum(sizes)
    return sum(len(document.text.encode()) for document in documents)


# --------------------------------------------------------------------------- model change


def _counter(progress: ProgressCallback | None, subject_id: str, total: int) -> Callable[[int], None]:
    """An ``on_batch`` callback reporting embedding progress out of ``total``."""
    done = 0

    def advance(count: int) -> None:
        nonlocal done
        done += count
        if progress is not None:
            progress(IngestProgress(subject_id, "embedding", done, total))

    return advance


async def change_embedding_model(
    runtime: Runtime,
    workspace_id: str,
    knowledge_base_id: str,
    embedding_model: str,
    *,
    progress: ProgressCallback | None = None,
) -> KnowledgeBase:
    """Switch a knowledge base to another embedding model, re-embedding every passage.

    The new vectors are computed first and written with the new model name in one
    transaction, so the index never mixes vectors of two models. If passages change
    meanwhile, it starts over.
    """
    spec = check_model_spec(runtime.plugins, embedding_model)
    service = KnowledgeService.of(runtime)
    for _attempt in range(MODEL_CHANGE_RETRIES):
        async with runtime.db.session() as session:
            knowledge_base = await get_knowledge_base(session, workspace_id, knowledge_base_id)
            if knowledge_base.embedding_model == spec.name:
                return knowledge_base
            version = knowledge_base.index_version
            rows = (
                await session.execute(
                    select(Chunk.id, Chunk.text, Chunk.meta)
                    .where(Chunk.workspace_id == workspace_id, Chunk.knowledge_base_id == knowledge_base.id)
                    .order_by(Chunk.id)
                )
            ).all()
        model = await service.models.get(workspace_id, spec.name)
        texts = [ChunkDraft(text, meta, 0).indexed_text for _id, text, meta in rows]
        vectors = await model.embed_documents(texts, on_batch=_counter(progress, knowledge_base.id, len(texts)))
        async with runtime.db.session() as session:
            current = await session.scalar(
                select(KnowledgeBase)
                .where(KnowledgeBase.workspace_id == workspace_id, KnowledgeBase.id == knowledge_base.id)
                .with_for_update()
            )
            if current is None:
                raise NotFound(f"knowledge base {knowledge_base_id!r} was deleted")
            if current.index_version != version:
                continue  # passages changed while we embedded: start over
            if rows:
                # ORM bulk UPDATE by primary key: one executemany.
                await session.execute(
                    update(Chunk),
                    [{"id": row[0], "embedding": vectors[index].tobytes()} for index, row in enumerate(rows)],
                )
            current.embedding_model = spec.name
            current.embedding_dim = int(vectors.shape[1]) if rows else None
            current.index_version += 1
            current.updated_at = utcnow()
        await service.refresh_index(workspace_id, knowledge_base.id)
        async with runtime.db.session() as session:
            return await get_knowledge_base(session, workspace_id, knowledge_base.id)
    raise Conflict("the knowledge base kept changing while it was re-embedded; try again")
