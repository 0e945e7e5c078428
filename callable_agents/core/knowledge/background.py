"""Indexing in the background of a server process, so a request that adds a source returns at once.

The dashboard (and any other request handler) adds a source with ``add_source``, commits,
then calls :func:`index_in_background`: the source ids go on this process's queue and
:class:`BackgroundIndexer`'s workers index them with ``ingest_source`` — the same function
the CLI and the refresh loop call. The database stays the record: a source waits as
``pending`` and is claimed as ``indexing``, so if this process dies the refresh loop picks
the source up again (pending ones after a grace period, abandoned claims once stale).

Each running source's latest :class:`IngestProgress` (loading N documents, embedding d of
t passages, ...) is kept in memory for :func:`indexing_progress`; another process indexing
the same database shows as ``indexing`` without the detail. When the queue runs dry, the
knowledge bases whose passages changed get their index rebuilt once, as the refresh loop does.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from callable_agents.core.errors import Conflict, NotFound
from callable_agents.core.knowledge.ingest import IngestProgress, ingest_source
from callable_agents.core.knowledge.refresh import sources_to_refresh, update_indexes

if TYPE_CHECKING:
    from callable_agents.core.models import Source
    from callable_agents.core.runtime import Runtime

log = logging.getLogger(__name__)

# Sources indexed at once by one process: a long crawl does not hold up pasted text, and
# the embedding work (on the CPU for local models) stays bounded.
WORKERS = 2


class BackgroundIndexer:
    """This process's queue of sources to index and the workers that drain it."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._queue: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
        self._waiting: set[str] = set()  # queued, not started
        self._progress: dict[str, IngestProgress] = {}  # started, not finished
        self._changed: set[tuple[str, str]] = set()  # knowledge bases to re-index when idle
        self._workers: list[asyncio.Task[None]] = []
        self._closed = False

    @classmethod
    def of(cls, runtime: Runtime) -> BackgroundIndexer:
        found = runtime.services.knowledge_indexer
        if found is None:
            found = runtime.services.knowledge_indexer = cls(runtime)
        return found

    def enqueue(self, workspace_id: str, source_ids: Sequence[str]) -> None:
        """Queue the sources (a source already queued is not queued twice)."""
        if self._closed:
            return
        for source_id in source_ids:
            if source_id in self._waiting:
                continue
            self._waiting.add(source_id)
            self._queue.put_nowait((workspace_id, source_id))
        self._workers = [task for task in self._workers if not task.done()]
        loop = asyncio.get_running_loop()
        while len(self._workers) < min(WORKERS, self._queue.qsize() + self.running):
            self._workers.append(loop.create_task(self._work(), name="knowledge-indexer"))

    @property
    def running(self) -> int:
        return len(self._progress)

    def is_queued(self, source_id: str) -> bool:
        return source_id in self._waiting

    def progress(self, source_id: str) -> IngestProgress | None:
        """The latest step of a source this process is indexing now, if it is."""
        return self._progress.get(source_id)

    async def _work(self) -> None:
        while not self._queue.empty():
            workspace_id, source_id = self._queue.get_nowait()
            self._waiting.discard(source_id)
            self._progress[source_id] = IngestProgress(source_id, "loading")
            try:
                source = await ingest_source(
                    self.runtime, workspace_id, source_id, progress=self._record, update_index=False
                )
                self._changed.add((workspace_id, source.knowledge_base_id))
            except (Conflict, NotFound) as exc:  # another process has it, or it was removed
                log.info("background indexing skipped source %s: %s", source_id, exc)
            except Exception:  # ingest_source records a source's own failures; this is the database
                log.exception("background indexing of source %s failed; the refresh loop retries it", source_id)
            finally:
                self._progress.pop(source_id, None)
            if self._queue.empty() and not self._progress and self._changed:
                changed, self._changed = self._changed, set()
                await update_indexes(self.runtime, changed)

    def _record(self, event: IngestProgress) -> None:
        if event.source_id in self._progress:
            self._progress[event.source_id] = event

    async def aclose(self) -> None:
        """Stop at shutdown: a source cut off mid-way goes back to pending (ingest_source does it)."""
        self._closed = True
        for task in self._workers:
            task.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)


def index_in_background(runtime: Runtime, workspace_id: str, source_ids: Sequence[str]) -> None:
    """Index the (committed) sources in this process's background, one queue per process."""
    BackgroundIndexer.of(runtime).enqueue(workspace_id, source_ids)


async def refresh_in_background(
    runtime: Runtime,
    workspace_id: str,
    *,
    knowledge_base_id: str | None = None,
    source_ids: Sequence[str] | None = None,
) -> list[str]:
    """:func:`~.refresh.refresh_sources` without waiting: the same sources (refreshable ones,
    pending and failed; or exactly ``source_ids``), queued. Returns the ids queued."""
    ids = await sources_to_refresh(runtime, workspace_id, knowledge_base_id=knowledge_base_id, source_ids=source_ids)
    index_in_background(runtime, workspace_id, ids)
    return ids


def indexing_progress(runtime: Runtime, source: Source) -> IngestProgress | None:
    """What this process is doing to ``source`` right now: None unless it is indexing it and
    the source, as read, still says so (the indexer forgets a source's progress a moment after
    its ``ready`` or ``failed`` is committed; a read in between must not show both)."""
    indexer = runtime.services.knowledge_indexer
    if indexer is None or source.status != "indexing":
        return None
    return indexer.progress(source.id)
