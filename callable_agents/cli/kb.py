"""``callable kb create | add-text | add-file | add-url | list | remove | refresh | search | ...``.

Adding a source indexes it at once, with a progress bar on stderr; the result line goes to
stdout. ``--no-index`` only records it (a running server indexes pending sources). A source
that fails to index makes the command exit non-zero with the reason.
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import click
from sqlalchemy.ext.asyncio import AsyncSession

from callable_agents.cli.common import (
    Progress,
    choose,
    echo_json,
    echo_table,
    json_option,
    resolve_workspace,
    with_runtime,
    workspace_option,
)
from callable_agents.core.errors import CallableError, InvalidInput
from callable_agents.core.knowledge import (
    SEARCH_MODES,
    IngestProgress,
    KnowledgeService,
    change_embedding_model,
    create_knowledge_base,
    delete_knowledge_base,
    find_source,
    get_knowledge_base,
    ingest_source,
    knowledge_base_stats,
    list_knowledge_bases,
    list_sources,
    refresh_sources,
)
from callable_agents.core.knowledge.manage import (
    add_file_source,
    add_text_source,
    add_url_source,
    describe_knowledge_base,
    describe_source,
    remove_source_and_update_index,
)
from callable_agents.core.models import KnowledgeBase, Source
from callable_agents.core.runtime import Runtime

_DURATION = re.compile(r"^(\d+)\s*([smhd]?)$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
PREVIEW_CHARACTERS = 280


class SourceFailed(CallableError):
    """A source was added but could not be indexed."""


def parse_duration(value: str | None) -> int | None:
    """``90``, ``30m``, ``12h``, ``7d`` -> seconds."""
    if value is None:
        return None
    match = _DURATION.match(value.strip().lower())
    if match is None:
        raise InvalidInput(f"--refresh-every: expected a duration like 3600, 30m, 12h or 7d, got {value!r}")
    return int(match.group(1)) * _UNITS[match.group(2)]


kb_option = click.option(
    "--kb", "kb_name", default=None, help="Knowledge base name or id (default: the only one in the workspace)."
)


async def resolve_kb(runtime: Runtime, workspace_id: str, name: str | None) -> KnowledgeBase:
    """The knowledge base named, or the only one; otherwise an error listing the choices."""
    async with runtime.db.session() as session:
        if name:
            return await get_knowledge_base(session, workspace_id, name)
        found = await list_knowledge_bases(session, workspace_id)
    if len(found) == 1:
        return found[0]
    if not found:
        raise InvalidInput("no knowledge base yet: create one with `callable kb create NAME`")
    raise InvalidInput(choose("--kb", "knowledge bases", [item.name for item in found], "--kb NAME"))


# The flags of `kb add-url` by the option field they set, so an error names the flag.
URL_FLAGS = {"options.max_pages": "--max-pages", "options.max_depth": "--max-depth", "options.mode": "--crawl/--sitemap"}


def name_flags(exc: InvalidInput, flags: dict[str, str]) -> InvalidInput:
    """The same error with stored field names (``options.max_depth``) replaced by their flags."""
    text = str(exc)
    for field_name, flag in flags.items():
        text = re.sub(rf"(^|; |\n)(?:\w+ source: )?{re.escape(field_name)}:", rf"\g<1>{flag}:", text)
    return InvalidInput(text) if text != str(exc) else exc


LOADING_LINE_EVERY = 10  # documents between plain progress lines when stderr is not a terminal


class ProgressDisplay:
    """Renders ingestion progress on stderr: a bar on a terminal, plain lines otherwise.

    Loading counts documents (a crawl's pages) as they arrive; embedding is a bar of
    passages. Each stage ends with its count and elapsed time.
    """

    def __init__(self, label: str, *, interactive: bool | None = None) -> None:
        self.label = label
        self.interactive = sys.stderr.isatty() if interactive is None else interactive
        self.bar: Progress | None = None
        self.loaded = 0
        self.loading_since: float | None = None
        self.midline = False  # a terminal's "loaded N" line is being rewritten in place

    def __call__(self, event: IngestProgress) -> None:
        if event.stage == "note":
            self._end_line()
            self._close_bar()
            click.echo(f"  {event.message}", err=True)
        elif event.stage == "loading":
            if self.loading_since is None:
                self.loading_since = time.monotonic()
            self.loaded = event.done
            if not event.done:
                return
            if self.interactive:
                click.echo(f"\r  {self.label}: loaded {event.done} document(s)", err=True, nl=False)
                self.midline = True
            elif event.done % LOADING_LINE_EVERY == 0:
                click.echo(f"  {self.label}: loaded {event.done} document(s)", err=True)
        elif event.stage in ("chunking", "unchanged", "failed") and self.loading_since is not None:
            self._end_loading()
            if event.stage == "unchanged":
                click.echo(f"  {event.message}", err=True)
        elif event.stage == "embedding" and event.total:
            if self.bar is None:
                self.bar = Progress(f"embedding {event.total} passage(s)", event.total, interactive=self.interactive)
            self.bar.update(event.done)
        if event.stage in ("storing", "done", "unchanged", "failed"):
            if self.bar is not None:
                self.bar.update(self.bar.total)
                self.bar.finish(f"embedded {self.bar.total} passage(s)")
                self.bar = None

    def _end_line(self) -> None:
        if self.midline:
            click.echo("", err=True)
            self.midline = False

    def _end_loading(self) -> None:
        assert self.loading_since is not None
        elapsed = time.monotonic() - self.loading_since
        # On a terminal the running count is replaced by the summary, on the same line.
        prefix = "\r" if self.midline else ""
        self.midline = False
        click.echo(f"{prefix}  {self.label}: loaded {self.loaded} document(s) in {elapsed:.1f}s", err=True)
        self.loading_since = None
        self.loaded = 0

    def _close_bar(self) -> None:
        if self.bar is not None:
            self.bar.finish(f"embedded {self.bar.done} of {self.bar.total} passage(s)")
            self.bar = None


def describe(source: Source) -> str:
    name = source.title or source.location or source.id
    if source.status == "ready":
        return (
            f"{source.kind} {name!r}: ready, {source.document_count} document(s), "
            f"{source.chunk_count} passage(s) [{source.id}]"
        )
    if source.status == "failed":
        return f"{source.kind} {name!r}: failed: {source.error} [{source.id}]"
    return f"{source.kind} {name!r}: {source.status} [{source.id}]"


async def _index(runtime: Runtime, workspace_id: str, sources: Sequence[Source], index: bool) -> None:
    failures = []
    started = time.monotonic()
    passages = 0
    for source in sources:
        if not index:
            click.echo(f"added {describe(source)} (not indexed yet: a running server indexes it)")
            continue
        done = await ingest_source(
            runtime,
            workspace_id,
            source.id,
            progress=ProgressDisplay(source.title or source.location),
            update_index=False,
        )
        click.echo(f"indexed {describe(done)}" if done.status == "ready" else describe(done))
        passages += done.chunk_count or 0
        if done.status == "failed":
            failures.append(done)
    if index and sources:  # one index rebuild (and saved copy for the server) for the batch
        await KnowledgeService.of(runtime).ensure_current(workspace_id, sources[0].knowledge_base_id)
        click.echo(
            f"done: {len(sources) - len(failures)} of {len(sources)} source(s) ready, {passages} passage(s), "
            f"in {time.monotonic() - started:.1f}s",
            err=True,
        )
    if failures:
        names = ", ".join(repr(item.title or item.location) for item in failures)
        raise SourceFailed(f"{len(failures)} source(s) failed to index: {names} (the reason is shown above)")


@click.group()
def kb() -> None:
    """Knowledge bases: the business's own content the agent answers from."""


@kb.command("create")
@click.argument("name")
@click.option(
    "--embeddings",
    default=None,
    help="Embedding model: wordllama (local, the default), openai[:MODEL[@INTEGRATION]], or a plugin's type.",
)
@workspace_option
def kb_create(name: str, embeddings: str | None, workspace: str | None) -> None:
    """Create an empty knowledge base."""

    async def action(runtime: Runtime) -> None:
        target = await resolve_workspace(runtime, workspace)
        async with runtime.db.session() as session:
            created = await create_knowledge_base(session, target.id, name, embedding_model=embeddings, runtime=runtime)
        click.echo(f"created knowledge base {created.name} ({created.id}, embeddings {created.embedding_model})")

    with_runtime(action)


@kb.command("add-text")
@click.argument("text", required=False)
@click.option("--title", required=True, help="What the text is about (shown in citations).")
@click.option(
    "--from-file", "from_file", type=click.Path(dir_okay=False, path_type=Path), help="Read the text from a file."
)
@click.option("--no-index", is_flag=True, help="Only add it; don't index now.")
@kb_option
@workspace_option
def kb_add_text(
    text: str | None, title: str, from_file: Path | None, no_index: bool, kb_name: str | None, workspace: str | None
) -> None:
    """Add pasted text (TEXT, or - to read standard input). The same title replaces earlier text."""
    if from_file is not None:
        if text is not None:
            raise InvalidInput("TEXT: give the text or --from-file, not both")
        content = _read_file(from_file)
    elif text == "-" or text is None:
        if text is None and sys.stdin.isatty():
            raise InvalidInput("TEXT: expected the text, - to read standard input, or --from-file PATH")
        content = sys.stdin.buffer.read()
    else:
        content = text.encode()

    async def add(session: AsyncSession, runtime: Runtime, workspace_id: str, kb_id: str) -> Source:
        return await add_text_source(session, runtime, workspace_id, kb_id, title=title, text=content)

    _add_and_index(workspace, kb_name, no_index, lambda runtime: [add])


# Adds one source (or replaces the one with its title, file name or URL): a
# :mod:`callable_agents.core.knowledge.manage` call given the session, runtime, workspace and KB ids.
AddSource = Callable[[AsyncSession, Runtime, str, str], Awaitable[Source]]


def _add_and_index(
    workspace: str | None,
    kb_name: str | None,
    no_index: bool,
    sources: Callable[[Runtime], list[AddSource]],
) -> None:
    """Add (or replace) the sources ``sources(runtime)`` adds, each in its own transaction,
    then index them unless asked not to."""

    async def action(runtime: Runtime) -> None:
        target = await resolve_workspace(runtime, workspace)
        knowledge_base = await resolve_kb(runtime, target.id, kb_name)
        added = []
        for add in sources(runtime):
            async with runtime.db.session() as session:
                added.append(await add(session, runtime, target.id, knowledge_base.id))
        await _index(runtime, target.id, added, not no_index)

    with_runtime(action)


def _read_file(path: Path, limit: int | None = None) -> bytes:
    try:
        size = path.stat().st_size
        if limit is not None and size > limit:
            raise InvalidInput(
                f"{path}: {size:,} bytes is over the upload limit of {limit:,} bytes (CALLABLE_MAX_UPLOAD_BYTES)"
            )
        return path.read_bytes()
    except OSError as exc:
        raise InvalidInput(f"{path}: cannot read the file ({exc.strerror or exc})") from None


@kb.command("add-file")
@click.argument("paths", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--title",
    default=None,
    help="Title shown in citations; one file only (default: the document's own title if it has one, else the file name).",
)
@click.option("--no-index", is_flag=True, help="Only add them; don't index now.")
@kb_option
@workspace_option
def kb_add_file(
    paths: tuple[Path, ...], title: str | None, no_index: bool, kb_name: str | None, workspace: str | None
) -> None:
    """Add files: PDF, DOCX, Markdown, HTML, CSV or plain text. A file with the same name replaces the earlier one."""
    if title and len(paths) > 1:
        raise InvalidInput("--title: give it for one file at a time")

    def files(runtime: Runtime) -> list[AddSource]:
        def adder(path: Path) -> AddSource:
            content = _read_file(path, runtime.settings.max_upload_bytes)

            async def add(session: AsyncSession, runtime: Runtime, workspace_id: str, kb_id: str) -> Source:
                # No --title: the document's own title (PDF/DOCX metadata, a Markdown or
                # HTML heading) when it has a real one, else the file name (the loader decides).
                return await add_file_source(
                    session, runtime, workspace_id, kb_id, file_name=path.name, content=content, title=title or ""
                )

            return add

        return [adder(path) for path in paths]

    _add_and_index(workspace, kb_name, no_index, files)


@kb.command("add-url")
@click.argument("url")
@click.option("--crawl", "mode", flag_value="crawl", help="Follow links on the same site from URL.")
@click.option("--sitemap", "mode", flag_value="sitemap", help="URL is a sitemap: index the pages it lists.")
@click.option("--max-pages", type=int, default=None, help="Most pages to index (crawl/sitemap; default 50).")
@click.option("--max-depth", type=int, default=None, help="Most links to follow from URL (crawl; default 3).")
@click.option("--refresh-every", default=None, help="Re-fetch on this interval, e.g. 12h or 7d (the server does it).")
@click.option("--no-index", is_flag=True, help="Only add it; don't fetch now.")
@kb_option
@workspace_option
def kb_add_url(
    url: str,
    mode: str | None,
    max_pages: int | None,
    max_depth: int | None,
    refresh_every: str | None,
    no_index: bool,
    kb_name: str | None,
    workspace: str | None,
) -> None:
    """Add a web page, a crawl of a site (--crawl) or a sitemap's pages (--sitemap)."""
    options: dict[str, Any] = {"mode": mode or "page"}
    if max_pages is not None:
        options["max_pages"] = max_pages
    if max_depth is not None:
        options["max_depth"] = max_depth
    interval = parse_duration(refresh_every)

    async def add(session: AsyncSession, runtime: Runtime, workspace_id: str, kb_id: str) -> Source:
        return await add_url_source(
            session, runtime, workspace_id, kb_id, url=url, options=options, refresh_interval_seconds=interval
        )

    try:
        _add_and_index(
            workspace,
            kb_name,
            no_index,
            lambda runtime: [add],
        )
    except InvalidInput as exc:
        raise name_flags(exc, URL_FLAGS) from None


@kb.command("list")
@json_option
@kb_option
@workspace_option
def kb_list(as_json: bool, kb_name: str | None, workspace: str | None) -> None:
    """List knowledge bases and their sources with status and counts."""

    async def action(runtime: Runtime) -> None:
        target = await resolve_workspace(runtime, workspace)
        async with runtime.db.session() as session:
            if kb_name:
                bases = [await get_knowledge_base(session, target.id, kb_name)]
            else:
                bases = list(await list_knowledge_bases(session, target.id))
            rows: list[dict[str, Any]] = []
            for base in bases:
                stats = await knowledge_base_stats(session, target.id, base.id)
                sources = await list_sources(session, target.id, base.id)
                rows.append(
                    {**describe_knowledge_base(base, stats), "sources": [describe_source(source) for source in sources]}
                )
        if as_json:
            echo_json(rows)
            return
        if not rows:
            click.echo("no knowledge bases yet: `callable kb create NAME`")
        for row in rows:
            stats = row["stats"]
            click.echo(
                f"{row['name']} ({row['id']}) embeddings {row['embedding_model']}: {stats['sources']} source(s), "
                f"{stats['ready']} ready, {stats['failed']} failed, {stats['chunks']} passage(s)"
            )
            for source in row["sources"]:
                name = source["location"] or source["title"]
                line = f"  {source['id']}  {source['status']:<8} {source['kind']:<5} {name}"
                if source["status"] == "ready":
                    line += f"  ({source['chunk_count']} passages)"
                if source["error"]:
                    line += f"  error: {source['error']}"
                click.echo(line)

    with_runtime(action)


async def _find_in_workspace(runtime: Runtime, workspace_id: str, kb_name: str | None, source: str) -> Source:
    """The source named in ``--kb``'s knowledge base, or in whichever one has it.

    Without ``--kb`` a source found in exactly one knowledge base is that one; found in
    several, the error lists them and says to pass ``--kb``.
    """
    from callable_agents.core.errors import NotFound

    async with runtime.db.session() as session:
        if kb_name:
            base = await get_knowledge_base(session, workspace_id, kb_name)
            return await find_source(session, workspace_id, base.id, source)
        bases = list(await list_knowledge_bases(session, workspace_id))
        found: list[tuple[KnowledgeBase, Source]] = []
        for base in bases:
            try:
                found.append((base, await find_source(session, workspace_id, base.id, source)))
            except NotFound:
                continue
    if len(found) == 1:
        return found[0][1]
    if not bases:
        raise InvalidInput("no knowledge base yet: create one with `callable kb create NAME`")
    if not found:
        names = ", ".join(base.name for base in bases)
        raise NotFound(f"SOURCE: no source {source!r} in any knowledge base ({names}); `callable kb list` shows them")
    raise InvalidInput(choose("--kb", f"knowledge bases with a source {source!r}", [base.name for base, _ in found], "--kb NAME"))


@kb.command("remove")
@click.argument("source")
@kb_option
@workspace_option
def kb_remove(source: str, kb_name: str | None, workspace: str | None) -> None:
    """Remove a source (by id, URL or file name) and its passages.

    Without --kb the source is looked for in every knowledge base of the workspace.
    """

    async def action(runtime: Runtime) -> None:
        target = await resolve_workspace(runtime, workspace)
        found = await _find_in_workspace(runtime, target.id, kb_name, source)
        removed = await remove_source_and_update_index(runtime, target.id, found.id)
        click.echo(f"removed {removed.kind} {removed.title or removed.location!r} [{removed.id}]")

    with_runtime(action)


@kb.command("delete")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Don't ask for confirmation.")
@workspace_option
def kb_delete(name: str, yes: bool, workspace: str | None) -> None:
    """Delete a knowledge base with all its sources and passages."""
    if not yes:
        click.confirm(f"Delete knowledge base {name!r} and all its sources?", abort=True)

    async def action(runtime: Runtime) -> None:
        target = await resolve_workspace(runtime, workspace)
        async with runtime.db.session() as session:
            deleted = await delete_knowledge_base(session, target.id, name)
        KnowledgeService.of(runtime).forget(deleted.id)
        click.echo(f"deleted knowledge base {deleted.name} ({deleted.id})")

    with_runtime(action)


@kb.command("refresh")
@click.option("--source", "source_ids", multiple=True, help="Only this source (id, URL or file name); repeatable.")
@kb_option
@workspace_option
def kb_refresh(source_ids: tuple[str, ...], kb_name: str | None, workspace: str | None) -> None:
    """Re-fetch URL sources (and retry failed or pending ones); re-index only what changed.

    Without --kb every knowledge base of the workspace is refreshed.
    """

    async def action(runtime: Runtime) -> None:
        started = time.monotonic()
        target = await resolve_workspace(runtime, workspace)
        base_id = (await resolve_kb(runtime, target.id, kb_name)).id if kb_name else None
        ids = None
        if source_ids:
            ids = [(await _find_in_workspace(runtime, target.id, kb_name, item)).id for item in source_ids]
        touched = await refresh_sources(
            runtime, target.id, knowledge_base_id=base_id, source_ids=ids, progress=ProgressDisplay("refresh")
        )
        for source in touched:
            click.echo(describe(source))
        if not touched:
            click.echo("nothing to refresh (only URL sources and failed or pending ones are re-fetched)")
        failed = [source for source in touched if source.status == "failed"]
        click.echo(
            f"done: {len(touched)} source(s) refreshed, {len(failed)} failed, in {time.monotonic() - started:.1f}s",
            err=True,
        )
        if failed:
            raise SourceFailed(f"{len(failed)} source(s) failed to refresh (the reason is shown above)")

    with_runtime(action)


@kb.command("search")
@click.argument("question")
@click.option("--kb", "kb_names", multiple=True, help="Knowledge base name or id; repeatable (default: all).")
@click.option("-k", "--top", "k", type=click.IntRange(1, 50), default=4, show_default=True, help="Passages to show.")
@click.option("--mode", type=click.Choice(SEARCH_MODES), default="hybrid", show_default=True)
@click.option("--source", "source_ids", multiple=True, help="Only passages of this source id; repeatable.")
@json_option
@workspace_option
def kb_search(
    question: str,
    kb_names: tuple[str, ...],
    k: int,
    mode: str,
    source_ids: tuple[str, ...],
    as_json: bool,
    workspace: str | None,
) -> None:
    """Show the passages the agent would get for QUESTION, ranked, with source and score."""

    async def action(runtime: Runtime) -> None:
        target = await resolve_workspace(runtime, workspace)
        async with runtime.db.session() as session:
            if kb_names:
                bases = [await get_knowledge_base(session, target.id, name) for name in kb_names]
            else:
                bases = list(await list_knowledge_bases(session, target.id))
        if not bases:
            raise InvalidInput("no knowledge base yet: create one with `callable kb create NAME`")
        passages = await KnowledgeService.of(runtime).search(
            target.id,
            [base.id for base in bases],
            question,
            k=k,
            mode=mode,  # type: ignore[arg-type]
            source_ids=list(source_ids) or None,
        )
        if as_json:
            echo_json([{"score": p.score, "text": p.text, "chunk_id": p.chunk_id, **p.citation()} for p in passages])
            return
        if not passages:
            click.echo("no matching passages")
        for rank, passage in enumerate(passages, start=1):
            where = passage.title or "(untitled)"
            if passage.page is not None:
                where += f", page {passage.page}"
            if passage.url:
                where += f" <{passage.url}>"
            preview = " ".join(passage.text.split())
            if len(preview) > PREVIEW_CHARACTERS:
                preview = preview[: PREVIEW_CHARACTERS - 1] + "…"
            click.echo(f"{rank}. score {passage.score:.4f}  {where}  [source {passage.source_id}]")
            click.echo(f"   {preview}")

    with_runtime(action)


@kb.command("set-embeddings")
@click.argument("name")
@click.argument("model")
@workspace_option
def kb_set_embeddings(name: str, model: str, workspace: str | None) -> None:
    """Switch a knowledge base to another embedding model (re-embeds every passage)."""

    async def action(runtime: Runtime) -> None:
        target = await resolve_workspace(runtime, workspace)
        changed = await change_embedding_model(runtime, target.id, name, model, progress=ProgressDisplay(name))
        click.echo(
            f"knowledge base {changed.name} now uses {changed.embedding_model} ({changed.embedding_dim} dimensions)"
        )

    with_runtime(action)


COMMANDS = [kb]
