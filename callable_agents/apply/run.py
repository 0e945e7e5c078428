"""Applying a file: check it, write it in one transaction, then index new and changed sources."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import select

from callable_agents.apply.checks import check_document
from callable_agents.apply.document import Problems
from callable_agents.apply.report import ApplyReport
from callable_agents.apply.write import write_plan
from callable_agents.core.errors import CallableError, InvalidInput
from callable_agents.core.models import Workspace
from callable_agents.core.runtime import Runtime

if TYPE_CHECKING:
    from callable_agents.core.knowledge.ingest import ProgressCallback

# Given a source's name (``kb/source``), the callback that shows its indexing progress.
ProgressFor = Callable[[str], "ProgressCallback"]


async def apply_document(
    runtime: Runtime,
    text: str,
    base_dir: Path | None,
    *,
    label: str = "<document>",
    source_root: Path | None = None,
    dry_run: bool = False,
    workspace: str | None = None,
    ingest: bool = True,
    skip_unregistered_channels: bool = False,
    progress: ProgressFor | None = None,
) -> ApplyReport:
    """Apply a YAML document (see the module docstring); ``base_dir`` resolves file sources,
    which must stay inside ``source_root`` (default: ``base_dir``; see :mod:`.files`).

    ``workspace`` overrides the document's workspace slug. With ``dry_run`` everything is
    checked and the report says what would change, but the transaction is rolled back.
    ``ingest=False`` leaves new and changed sources pending (``callable kb`` indexes them).
    ``skip_unregistered_channels`` leaves out, with a note, channels whose type no loaded
    plugin provides (for the packaged demo; a user's file with an unknown type is an error).
    ``progress(name)`` gives the progress callback for indexing the source ``name``.
    Raises :class:`ApplyError` (an :class:`InvalidInput`) naming line and field.
    """
    # Off the event loop: file sources are read from disk here.
    plan, lines, notes = await asyncio.to_thread(
        check_document,
        runtime,
        text,
        label=label,
        base_dir=base_dir,
        source_root=source_root,
        workspace=workspace,
        skip_unregistered_channels=skip_unregistered_channels,
    )
    report = ApplyReport(workspace=plan.workspace.slug, dry_run=dry_run, notes=notes)
    problems = Problems(lines)
    async with runtime.db.sessions() as session:
        transaction = await session.begin()
        await runtime.db.mark_write(session)
        try:
            to_ingest = await write_plan(session, runtime, plan, report, problems)
            if problems.found or dry_run:
                await transaction.rollback()
            else:
                await transaction.commit()
        except BaseException:
            await transaction.rollback()
            raise
    problems.raise_if_any(label)
    if dry_run or not ingest:
        return report
    workspace_row_id = await _workspace_id(runtime, report.workspace)
    from callable_agents.core.knowledge.ingest import ingest_source

    for source_id, name in to_ingest:
        try:
            callback = progress(name) if progress is not None else None
            indexed = await ingest_source(runtime, workspace_row_id, source_id, progress=callback)
        except CallableError as exc:  # e.g. another process is indexing it right now
            report.failed_sources.append(f"{name}: {exc}")
            continue
        if indexed.status == "failed":
            report.failed_sources.append(f"{name}: {indexed.error}")
    return report


async def _workspace_id(runtime: Runtime, slug: str) -> str:
    async with runtime.db.session() as session:
        workspace_id = await session.scalar(select(Workspace.id).where(Workspace.slug == slug))
    assert workspace_id is not None
    return workspace_id


async def apply_file(
    runtime: Runtime,
    path: str | Path,
    *,
    dry_run: bool = False,
    workspace: str | None = None,
    ingest: bool = True,
    source_root: str | Path | None = None,
    progress: ProgressFor | None = None,
) -> ApplyReport:
    """Apply the YAML file at ``path``. File sources are read relative to its folder and must
    stay inside it, or inside ``source_root`` when given (see :mod:`.files`)."""
    file_path = Path(path)
    root: Path | None = None
    if source_root is not None:
        root = Path(source_root)
        if not root.is_dir():
            raise InvalidInput(f"--source-root: no folder at {str(source_root)!r}")
    try:
        text = await asyncio.to_thread(file_path.read_text, encoding="utf-8")
    except FileNotFoundError:
        raise InvalidInput(f"-f: no file at {str(path)!r}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"-f: cannot read {str(path)!r}: {exc}") from None
    return await apply_document(
        runtime,
        text,
        file_path.resolve().parent,
        label=str(path),
        source_root=root,
        dry_run=dry_run,
        workspace=workspace,
        ingest=ingest,
        progress=progress,
    )
