"""Knowledge bases and their sources: workspace-scoped data access.

Every function takes the session first and the workspace id second, and every query filters
by the workspace. Any change to a knowledge base's passages bumps its ``index_version`` in
the same transaction, which is how every process learns its cached index is stale.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError
from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import undefer

from callable_agents.core.db import fetch_all, find_named, scoped
from callable_agents.core.errors import Conflict, InvalidInput, NotFound
from callable_agents.core.knowledge.embeddings import check_model_spec, default_model_spec, parse_model_spec
from callable_agents.core.contracts.loaders import LoaderType, SourceDraft
from callable_agents.core.models import Agent, Chunk, KnowledgeBase, Source, utcnow

if TYPE_CHECKING:
    from callable_agents.core.runtime import Runtime

MAX_NAME_LENGTH = 100
MAX_TITLE_LENGTH = 500
MIN_REFRESH_INTERVAL_SECONDS = 300
SOURCE_STATUSES = ("pending", "indexing", "ready", "failed")
# An "indexing" claim older than this was abandoned (its process died): others may take it.
STALE_CLAIM = timedelta(minutes=15)


async def create_knowledge_base(
    session: AsyncSession,
    workspace_id: str,
    name: str,
    *,
    embedding_model: str | None = None,
    runtime: Runtime | None = None,
) -> KnowledgeBase:
    """Create an empty knowledge base. With ``runtime``, the embeddings type is checked
    against the loaded plugins too (otherwise only its form is). Without ``embedding_model``
    it gets the plugins' default embeddings, which needs ``runtime``."""
    name = _check_name(name)
    if embedding_model is None:
        if runtime is None:
            raise TypeError("create_knowledge_base() needs embedding_model or runtime (whose plugins name the default)")
        embedding_model = default_model_spec(runtime.plugins)
    spec = check_model_spec(runtime.plugins, embedding_model) if runtime else parse_model_spec(embedding_model)
    if await session.scalar(scoped(KnowledgeBase, workspace_id).where(KnowledgeBase.name == name)):
        raise Conflict(f"knowledge base {name!r} already exists in this workspace")
    knowledge_base = KnowledgeBase(workspace_id=workspace_id, name=name, embedding_model=spec.name)
    session.add(knowledge_base)
    await session.flush()
    return knowledge_base


async def get_knowledge_base(session: AsyncSession, workspace_id: str, name_or_id: str) -> KnowledgeBase:
    knowledge_base = await find_named(session, KnowledgeBase, workspace_id, name_or_id)
    if knowledge_base is None:
        raise NotFound(f"knowledge base {name_or_id!r} not found in this workspace: `callable kb list` shows them")
    return knowledge_base


async def list_knowledge_bases(session: AsyncSession, workspace_id: str) -> Sequence[KnowledgeBase]:
    return await fetch_all(session, scoped(KnowledgeBase, workspace_id).order_by(KnowledgeBase.name))


def _check_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > MAX_NAME_LENGTH:
        raise InvalidInput(f"name: expected a knowledge base name of 1-{MAX_NAME_LENGTH} characters, got {name!r}")
    return name


async def rename_knowledge_base(
    session: AsyncSession, workspace_id: str, name_or_id: str, new_name: str
) -> KnowledgeBase:
    """Give a knowledge base another name. Agents keep it (they refer to it by id); an
    apply file that names it must use the new name."""
    knowledge_base = await get_knowledge_base(session, workspace_id, name_or_id)
    new_name = _check_name(new_name)
    if new_name == knowledge_base.name:
        return knowledge_base
    if await session.scalar(scoped(KnowledgeBase, workspace_id).where(KnowledgeBase.name == new_name)):
        raise Conflict(f"name: knowledge base {new_name!r} already exists in this workspace")
    knowledge_base.name = new_name
    knowledge_base.updated_at = utcnow()
    await session.flush()
    return knowledge_base


async def agents_using_knowledge_base(session: AsyncSession, workspace_id: str, knowledge_base_id: str) -> list[str]:
    """The names of the workspace's agents that search this knowledge base, sorted."""
    rows = await session.execute(select(Agent.name, Agent.knowledge_base_ids).where(Agent.workspace_id == workspace_id))
    return sorted(name for name, ids in rows.all() if knowledge_base_id in (ids or []))


async def delete_knowledge_base(
    session: AsyncSession, workspace_id: str, name_or_id: str, *, if_unused: bool = False
) -> KnowledgeBase:
    """Delete a knowledge base with its sources and passages (saved indexes go lazily).

    With ``if_unused`` a knowledge base that agents search is refused (Conflict naming them).
    """
    knowledge_base = await get_knowledge_base(session, workspace_id, name_or_id)
    if if_unused:
        users = await agents_using_knowledge_base(session, workspace_id, knowledge_base.id)
        if users:
            raise Conflict(
                f"knowledge base {knowledge_base.name!r} is used by agent(s) {', '.join(users)}; "
                "detach it from them in the Agents section first"
            )
    await session.execute(
        delete(Chunk).where(Chunk.workspace_id == workspace_id, Chunk.knowledge_base_id == knowledge_base.id)
    )
    await session.execute(
        delete(Source).where(Source.workspace_id == workspace_id, Source.knowledge_base_id == knowledge_base.id)
    )
    await session.delete(knowledge_base)
    await session.flush()
    return knowledge_base


async def knowledge_base_stats(session: AsyncSession, workspace_id: str, knowledge_base_id: str) -> dict[str, int]:
    """Source counts by status and the total passage count."""
    rows = await session.execute(
        select(Source.status, func.count(), func.coalesce(func.sum(Source.chunk_count), 0))
        .where(Source.workspace_id == workspace_id, Source.knowledge_base_id == knowledge_base_id)
        .group_by(Source.status)
    )
    stats = {status: 0 for status in SOURCE_STATUSES} | {"sources": 0, "chunks": 0}
    for status, count, chunks in rows:
        stats[status] = int(count)
        stats["sources"] += int(count)
        stats["chunks"] += int(chunks)
    return stats


async def bump_index_version(session: AsyncSession, workspace_id: str, knowledge_base_id: str) -> None:
    await session.execute(
        update(KnowledgeBase)
        .where(KnowledgeBase.workspace_id == workspace_id, KnowledgeBase.id == knowledge_base_id)
        .values(index_version=KnowledgeBase.index_version + 1, updated_at=utcnow())
    )


# --------------------------------------------------------------------------- sources


def validate_options(loader: LoaderType, options: dict[str, Any] | None) -> BaseModel:
    """The loader's options model for ``options``; InvalidInput names each bad field."""
    try:
        return loader.options_schema(**(options or {}))
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            where = ".".join(str(part) for part in error["loc"]) or "options"
            problems.append(f"options.{where}: {error['msg']}")
        raise InvalidInput(f"{loader.name} source: " + "; ".join(problems)) from None
    except TypeError as exc:
        raise InvalidInput(f"{loader.name} source: options: {exc}") from None


async def add_source(
    session: AsyncSession,
    workspace_id: str,
    knowledge_base_id: str,
    *,
    runtime: Runtime,
    kind: str,
    location: str = "",
    title: str = "",
    content: bytes | None = None,
    options: dict[str, Any] | None = None,
    refresh_interval_seconds: int | None = None,
    replace: bool = False,
) -> Source:
    """Add a pending source (``ingest_source`` indexes it).

    The loader of ``kind`` validates the options against its schema and checks the input
    (file type and size, URL form, non-empty text) before anything is stored. A source with
    the same kind and location already in the knowledge base is a Conflict unless
    ``replace``, which updates it in place (its passages are replaced when it is indexed,
    and only if its content changed).
    """
    knowledge_base = await get_knowledge_base(session, workspace_id, knowledge_base_id)
    if kind not in runtime.plugins.loaders:
        known = ", ".join(sorted(loader.name for loader in runtime.plugins.loaders)) or "none"
        raise InvalidInput(f"kind: unknown source kind {kind!r}; available: {known}")
    loader = runtime.plugins.loaders.get(kind)
    parsed_options = validate_options(loader, options)
    location = location.strip()
    title = title.strip()[:MAX_TITLE_LENGTH]
    if refresh_interval_seconds is not None:
        if not loader.refreshable:
            raise InvalidInput(
                f"refresh_interval_seconds: {kind} sources don't change by themselves; only URLs refresh"
            )
        if refresh_interval_seconds < MIN_REFRESH_INTERVAL_SECONDS:
            raise InvalidInput(
                f"refresh_interval_seconds: expected at least {MIN_REFRESH_INTERVAL_SECONDS}, "
                f"got {refresh_interval_seconds}"
            )
    if loader.check is not None:
        loader.check(
            SourceDraft(
                settings=runtime.settings, location=location, title=title, options=parsed_options, content=content
            )
        )
    stored_options = parsed_options.model_dump(mode="json", exclude_defaults=True)
    existing = None
    if location:
        existing = await session.scalar(
            scoped(Source, workspace_id).where(
                Source.knowledge_base_id == knowledge_base.id, Source.kind == kind, Source.location == location
            )
        )
    if existing is not None:
        if not replace:
            raise Conflict(
                f"knowledge base {knowledge_base.name!r} already has a {kind} source {location!r} "
                f"(id {existing.id}): remove it first, or replace it"
            )
        if existing.status == "indexing" and existing.updated_at > utcnow() - STALE_CLAIM:
            raise Conflict(f"{kind} source {location!r} is being indexed right now; replace it when that is done")
        existing.title = title or existing.title
        existing.options = stored_options
        existing.content = content
        existing.refresh_interval_seconds = refresh_interval_seconds
        existing.next_refresh_at = None
        existing.byte_count = len(content) if content is not None else existing.byte_count
        existing.status = "pending"
        await session.flush()
        return existing
    source = Source(
        workspace_id=workspace_id,
        knowledge_base_id=knowledge_base.id,
        kind=kind,
        location=location,
        title=title,
        options=stored_options,
        content=content,
        status="pending",
        byte_count=len(content) if content is not None else 0,
        refresh_interval_seconds=refresh_interval_seconds,
    )
    session.add(source)
    await session.flush()
    return source


async def get_source(session: AsyncSession, workspace_id: str, source_id: str, *, with_content: bool = False) -> Source:
    query = scoped(Source, workspace_id).where(Source.id == source_id)
    if with_content:
        query = query.options(undefer(Source.content))
    source = await session.scalar(query)
    if source is None:
        raise NotFound(f"source {source_id!r} not found in this workspace")
    return source


async def find_source(session: AsyncSession, workspace_id: str, knowledge_base_id: str, id_or_location: str) -> Source:
    """A source of the knowledge base by id, or by its location (URL or file name)."""
    matches = (
        await session.scalars(
            scoped(Source, workspace_id).where(
                Source.knowledge_base_id == knowledge_base_id,
                or_(Source.id == id_or_location, Source.location == id_or_location),
            )
        )
    ).all()
    if not matches:
        raise NotFound(f"source {id_or_location!r} not found in this knowledge base: `callable kb list` shows them")
    if len(matches) > 1:
        raise InvalidInput(f"source: {id_or_location!r} matches several sources; name one by id")
    return matches[0]


async def list_sources(
    session: AsyncSession,
    workspace_id: str,
    knowledge_base_id: str | None = None,
    *,
    newest_first: bool = False,
    offset: int = 0,
    limit: int | None = None,
    ids: Sequence[str] | None = None,
) -> Sequence[Source]:
    """Sources in the order they were added (``newest_first`` reverses it); ``offset`` and
    ``limit`` take one page, ``ids`` only those (ids of other workspaces find nothing)."""
    query = scoped(Source, workspace_id)
    if knowledge_base_id is not None:
        query = query.where(Source.knowledge_base_id == knowledge_base_id)
    if ids is not None:
        query = query.where(Source.id.in_(ids))
    if newest_first:
        query = query.order_by(Source.created_at.desc(), Source.id.desc())
    else:
        query = query.order_by(Source.created_at, Source.id)
    if offset:
        query = query.offset(offset)
    if limit is not None:
        query = query.limit(limit)
    return await fetch_all(session, query)


async def remove_source(session: AsyncSession, workspace_id: str, source_id: str) -> Source:
    """Delete a source and its passages; it is gone from search as soon as this commits."""
    source = await get_source(session, workspace_id, source_id)
    await session.execute(delete(Chunk).where(Chunk.workspace_id == workspace_id, Chunk.source_id == source.id))
    await session.delete(source)
    await bump_index_version(session, workspace_id, source.knowledge_base_id)
    await session.flush()
    return source
