"""What a person does to a knowledge base, one call each, for the CLI, the admin API and the dashboard.

- :func:`add_text_source`, :func:`add_file_source`, :func:`add_url_source` — the three ways
  a business adds content; the same title (text), file name (file) or URL replaces the
  earlier source in place. Each stores a *pending* source (nothing is fetched yet); commit,
  then :func:`~callable_agents.core.knowledge.background.index_in_background` its id.
- :func:`resync_in_background` — a Retry or refresh: the sources are pending at once, then
  indexed by this process's background indexer (:mod:`.background`, which also indexes
  what the add functions stored, given their ids).
- :func:`remove_source_and_update_index` — a source and its passages go, and this process's
  index follows at once.
- :func:`describe_knowledge_base`, :func:`describe_source` — the views people and APIs see.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from callable_agents.core.knowledge.background import index_in_background
from callable_agents.core.knowledge.refresh import sources_to_refresh
from callable_agents.core.knowledge.search import KnowledgeService
from callable_agents.core.knowledge.store import add_source, remove_source
from callable_agents.core.models import KnowledgeBase, Source, utcnow

if TYPE_CHECKING:
    from callable_agents.core.runtime import Runtime

__all__ = [
    "add_file_source",
    "add_text_source",
    "add_url_source",
    "describe_knowledge_base",
    "describe_source",
    "remove_source_and_update_index",
    "resync_in_background",
]


async def add_text_source(
    session: AsyncSession, runtime: Runtime, workspace_id: str, knowledge_base_id: str, *, title: str, text: bytes
) -> Source:
    """Pasted text under ``title`` (shown in citations); the same title replaces the earlier text."""
    return await add_source(
        session, workspace_id, knowledge_base_id, runtime=runtime, replace=True,
        kind="text", location=title, title=title, content=text,
    )


async def add_file_source(
    session: AsyncSession,
    runtime: Runtime,
    workspace_id: str,
    knowledge_base_id: str,
    *,
    file_name: str,
    content: bytes,
    title: str = "",
    content_type: str | None = None,
) -> Source:
    """An uploaded file (PDF, DOCX, Markdown, HTML, CSV, text); the same file name replaces the
    earlier one. Without ``title`` the document's own title is used, else the file name."""
    options = {"content_type": content_type} if content_type else None
    return await add_source(
        session, workspace_id, knowledge_base_id, runtime=runtime, replace=True,
        kind="file", location=file_name, title=title, content=content, options=options,
    )


async def add_url_source(
    session: AsyncSession,
    runtime: Runtime,
    workspace_id: str,
    knowledge_base_id: str,
    *,
    url: str,
    options: Mapping[str, Any] | None = None,
    refresh_interval_seconds: int | None = None,
) -> Source:
    """A web page, a crawl of a site (``options.mode`` ``crawl``, ``max_pages``, ``max_depth``)
    or a sitemap's pages (``sitemap``); ``refresh_interval_seconds`` re-fetches it on that
    interval. The same URL replaces the earlier source."""
    return await add_source(
        session, workspace_id, knowledge_base_id, runtime=runtime, replace=True,
        kind="url", location=url, options=dict(options or {}), refresh_interval_seconds=refresh_interval_seconds,
    )


async def resync_in_background(
    runtime: Runtime,
    workspace_id: str,
    *,
    source_ids: Sequence[str] | None = None,
    knowledge_base_id: str | None = None,
) -> list[Source]:
    """Re-sync sources (a Retry, a refresh) without waiting: they are marked ``pending`` now,
    so anyone reading them sees the re-sync under way, then queued for this process's
    background indexer (:mod:`.background`). Without ``source_ids``: the knowledge base's
    refreshable, pending and failed sources, as ``callable kb refresh`` takes them. Returns
    the sources as marked (one being indexed right now is left to that run)."""
    ids = await sources_to_refresh(runtime, workspace_id, knowledge_base_id=knowledge_base_id, source_ids=source_ids)
    async with runtime.db.session() as session:
        await session.execute(
            update(Source)
            .where(Source.workspace_id == workspace_id, Source.id.in_(ids), Source.status != "indexing")
            .values(status="pending", updated_at=utcnow())
        )
        marked = (await session.scalars(select(Source).where(Source.workspace_id == workspace_id, Source.id.in_(ids)))).all()
    index_in_background(runtime, workspace_id, ids)
    return sorted(marked, key=lambda source: ids.index(source.id))


async def remove_source_and_update_index(runtime: Runtime, workspace_id: str, source_id: str) -> Source:
    """Delete a source and its passages; this process's index is rebuilt at once (others see
    the new ``index_version`` on their next search)."""
    async with runtime.db.session() as session:
        removed = await remove_source(session, workspace_id, source_id)
    await KnowledgeService.of(runtime).refresh_index(workspace_id, removed.knowledge_base_id)
    return removed


def describe_source(source: Source) -> dict[str, Any]:
    """A source's status (``failed`` with the reason), counts and dates; never its content."""
    return {
        "id": source.id,
        "knowledge_base_id": source.knowledge_base_id,
        "kind": source.kind,
        "title": source.title,
        "location": source.location,
        "options": dict(source.options or {}),
        "status": source.status,
        "error": source.error,
        "document_count": source.document_count,
        "chunk_count": source.chunk_count,
        "byte_count": source.byte_count,
        "refresh_interval_seconds": source.refresh_interval_seconds,
        "last_indexed_at": source.last_indexed_at.isoformat() if source.last_indexed_at else None,
        "created_at": source.created_at.isoformat() if source.created_at else None,
        "updated_at": source.updated_at.isoformat() if source.updated_at else None,
    }


def describe_knowledge_base(knowledge_base: KnowledgeBase, stats: Mapping[str, int]) -> dict[str, Any]:
    """A knowledge base with its embedding model and source counts by status
    (:func:`~callable_agents.core.knowledge.store.knowledge_base_stats`)."""
    return {
        "id": knowledge_base.id,
        "name": knowledge_base.name,
        "embedding_model": knowledge_base.embedding_model,
        "embedding_dim": knowledge_base.embedding_dim,
        "stats": dict(stats),
        "created_at": knowledge_base.created_at.isoformat() if knowledge_base.created_at else None,
        "updated_at": knowledge_base.updated_at.isoformat() if knowledge_base.updated_at else None,
    }
