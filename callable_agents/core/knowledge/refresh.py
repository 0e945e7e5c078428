"""Freshness: re-fetching URL sources, on demand and on their refresh interval.

``callable kb refresh`` re-loads the refreshable sources (URLs) of a knowledge base; only
sources whose content hash changed are re-chunked and re-embedded (see ingestion). The
server runs :func:`start_refresh_loop`, which every so often indexes what is due: sources
whose refresh interval elapsed, sources still pending (added through the API), and claims
abandoned by a process that died mid-way.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING

from sqlalchemy import and_, or_, select

from callable_agents.core.errors import Conflict, NotFound
from callable_agents.core.knowledge.ingest import ProgressCallback, ingest_source
from callable_agents.core.knowledge.search import KnowledgeService
from callable_agents.core.knowledge.store import STALE_CLAIM
from callable_agents.core.models import Source, utcnow

if TYPE_CHECKING:
    from callable_agents.core.runtime import Runtime

log = logging.getLogger(__name__)

REFRESH_POLL_SECONDS = 60.0
DUE_BATCH = 20
# A pending source is usually about to be indexed by whoever added it (the CLI does so at
# once); the loop only takes those left pending for a while.
PENDING_GRACE = timedelta(seconds=30)


async def refresh_sources(
    runtime: Runtime,
    workspace_id: str,
    *,
    knowledge_base_id: str | None = None,
    source_ids: Sequence[str] | None = None,
    include_failed: bool = True,
    progress: ProgressCallback | None = None,
) -> list[Source]:
    """Re-load the workspace's refreshable sources (optionally of one knowledge base, or the
    given sources of any kind) plus pending and, with ``include_failed``, failed ones.

    Returns every source touched, with its new status. A source another process is indexing
    right now is left to it.
    """
    ids = await sources_to_refresh(
        runtime, workspace_id, knowledge_base_id=knowledge_base_id, source_ids=source_ids, include_failed=include_failed
    )
    touched: list[Source] = []
    for source_id in ids:
        try:
            touched.append(await ingest_source(runtime, workspace_id, source_id, progress=progress, update_index=False))
        except (Conflict, NotFound) as exc:
            log.info("refresh skipped source %s: %s", source_id, exc)
    await update_indexes(runtime, {(workspace_id, source.knowledge_base_id) for source in touched})
    return touched


async def sources_to_refresh(
    runtime: Runtime,
    workspace_id: str,
    *,
    knowledge_base_id: str | None = None,
    source_ids: Sequence[str] | None = None,
    include_failed: bool = True,
) -> list[str]:
    """The ids :func:`refresh_sources` would re-load, oldest first (the same selection)."""
    refreshable = [loader.name for loader in runtime.plugins.loaders if loader.refreshable]
    async with runtime.db.session() as session:
        query = select(Source.id).where(Source.workspace_id == workspace_id)
        if knowledge_base_id is not None:
            query = query.where(Source.knowledge_base_id == knowledge_base_id)
        if source_ids is not None:
            query = query.where(Source.id.in_(list(source_ids)))
        else:
            wanted = [Source.kind.in_(refreshable), Source.status == "pending"]
            if include_failed:
                wanted.append(Source.status == "failed")
            query = query.where(or_(*wanted))
        return list((await session.scalars(query.order_by(Source.created_at, Source.id))).all())


async def update_indexes(runtime: Runtime, knowledge_bases: set[tuple[str, str]]) -> None:
    """One index rebuild per knowledge base after a batch, not one per source."""
    service = KnowledgeService.of(runtime)
    for workspace_id, knowledge_base_id in sorted(knowledge_bases):
        try:
            await service.ensure_current(workspace_id, knowledge_base_id)
        except Exception:  # the passages are stored; a search rebuilds the index later
            log.exception("updating the index of knowledge base %s failed", knowledge_base_id)


async def refresh_due_sources(runtime: Runtime) -> int:
    """Index every source that is due, across workspaces; returns how many were indexed."""
    now = utcnow()
    async with runtime.db.session() as session:
        rows = (
            await session.execute(
                select(Source.workspace_id, Source.id)
                .where(
                    or_(
                        and_(
                            Source.refresh_interval_seconds.is_not(None),
                            Source.status.in_(("ready", "failed")),
                            or_(Source.next_refresh_at.is_(None), Source.next_refresh_at <= now),
                        ),
                        and_(Source.status == "pending", Source.updated_at < now - PENDING_GRACE),
                        and_(Source.status == "indexing", Source.updated_at < now - STALE_CLAIM),
                    )
                )
                .order_by(Source.updated_at)
                .limit(DUE_BATCH)
            )
        ).all()
    indexed = 0
    knowledge_bases: set[tuple[str, str]] = set()
    for workspace_id, source_id in rows:
        try:
            source = await ingest_source(runtime, workspace_id, source_id, update_index=False)
        except (Conflict, NotFound):
            continue  # taken by another process, or removed meanwhile
        indexed += 1
        knowledge_bases.add((workspace_id, source.knowledge_base_id))
    await update_indexes(runtime, knowledge_bases)
    return indexed


def start_refresh_loop(runtime: Runtime, *, poll_seconds: float = REFRESH_POLL_SECONDS) -> asyncio.Task[None]:
    """Start the background task that keeps sources fresh (the server's lifespan cancels it)."""

    async def loop() -> None:
        while True:
            try:
                while await refresh_due_sources(runtime) >= DUE_BATCH:
                    pass  # more are due: keep going before sleeping
            except asyncio.CancelledError:
                raise
            except Exception:  # a bad poll must not end freshness for the server's lifetime
                log.exception("refreshing knowledge sources failed; retrying in %.0fs", poll_seconds)
            await asyncio.sleep(poll_seconds)

    return asyncio.get_running_loop().create_task(loop(), name="knowledge-refresh")
