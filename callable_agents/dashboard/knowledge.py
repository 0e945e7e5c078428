"""``/dashboard/knowledge``: knowledge bases, their sources as they index, and a retrieval test.

The index lists the workspace's knowledge bases (create one there). A knowledge base's page
shows its sources with status (pending, indexing with its progress, ready, failed with the
reason and a Retry), passage counts and when each was last indexed; it adds files (several
at once, dropped or chosen), a URL with the web loader's crawl options (a form generated
from the loader's options schema), or pasted text; re-syncs one source or all; removes a
source; renames or deletes the knowledge base (refused while agents use it, naming them);
and runs the agent's own hybrid search on a question, showing the ranked passages.

Everything goes through ``core/knowledge`` (the functions the CLI and the admin API call).
A request only records the source (``add_source``) and queues it with
``index_in_background``: indexing runs in the server's background, and the sources table
polls every second (HTMX) while something is pending or indexing, stopping when all are
settled.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from callable_agents.core.config import Settings
from callable_agents.core.conversation.turn.deps import SEARCH_K
from callable_agents.core.errors import CallableError, Conflict, InvalidInput, NotFound
from callable_agents.core.knowledge import (
    IngestProgress,
    KnowledgeService,
    Passage,
    add_source,
    agents_using_knowledge_base,
    create_knowledge_base,
    delete_knowledge_base,
    get_knowledge_base,
    get_source,
    index_in_background,
    indexing_progress,
    knowledge_base_stats,
    list_knowledge_bases,
    list_sources,
    refresh_in_background,
    remove_source,
    rename_knowledge_base,
)
from callable_agents.core.knowledge.store import MAX_NAME_LENGTH, MAX_TITLE_LENGTH
from callable_agents.core.models import KnowledgeBase, Source
from callable_agents.core.runtime import Runtime, runtime_of
from callable_agents.core.store.users import SignedIn
from callable_agents.dashboard.forms import GENERAL, Form
from callable_agents.dashboard.guard import page
from callable_agents.dashboard.rendering import is_htmx, render
from callable_agents.dashboard.schema_forms import FieldSpec, data_from_form, fields_of

MAX_FILES_PER_UPLOAD = 10
ADDED_NAMES_SHOWN = 3  # an add's notice names this many sources, then "and N more"
SOURCES_PER_PAGE = 50
MAX_SEARCH_K = 10
MAX_QUESTION_LENGTH = 1000
OPTIONS_PREFIX = "options."
# How often the sources table asks for news while something is pending or indexing.
POLL_SECONDS = 1
# Choices for re-fetching a URL on its own (seconds; "" = only when re-synced).
REFRESH_CHOICES: tuple[tuple[str, str], ...] = (
    ("", "Only when I re-sync"),
    ("3600", "Every hour"),
    ("21600", "Every 6 hours"),
    ("86400", "Every day"),
    ("604800", "Every week"),
)
# The upload route: the server lets its bodies be as large as the files it accepts.
KNOWLEDGE_UPLOAD_PATHS = (re.compile(r"/dashboard/knowledge/[^/]+/files"),)


def knowledge_upload_body_limit(settings: Settings) -> int:
    """The largest upload request: the most files at once at the largest size, plus the form."""
    return settings.max_upload_bytes * MAX_FILES_PER_UPLOAD + settings.max_request_bytes


@dataclass(frozen=True)
class SourceRow:
    """A source as the table shows it, with what this process knows of its indexing."""

    source: Source
    progress: IngestProgress | None
    queued: bool

    @property
    def name(self) -> str:
        return self.source.title or self.source.location or self.source.id

    @property
    def refresh_label(self) -> str:
        """How often the source is re-fetched on its own ("" when only on re-sync)."""
        seconds = self.source.refresh_interval_seconds
        if not seconds:
            return ""
        named = dict(REFRESH_CHOICES).get(str(seconds))
        return f"re-fetched {named.lower()}" if named else f"re-fetched every {seconds / 3600:g} h"

    @property
    def settled(self) -> bool:
        return self.source.status in ("ready", "failed")

    @property
    def progress_text(self) -> str:
        progress = self.progress
        if self.source.status == "pending":
            return "queued" if self.queued else "waiting to be indexed"
        if self.source.status != "indexing":
            return ""
        if progress is None:
            return "indexing"
        if progress.stage == "loading":
            return f"loading: {progress.done} document(s) so far" if progress.done else "loading"
        if progress.stage == "chunking":
            return f"cutting {progress.total or 0} document(s) into passages"
        if progress.stage == "embedding" and progress.total:
            return f"embedding {progress.done} of {progress.total} passage(s)"
        if progress.stage == "storing":
            return f"storing {progress.total or 0} passage(s)"
        return "indexing"


@dataclass(frozen=True)
class KnowledgeBaseRow:
    knowledge_base: KnowledgeBase
    stats: dict[str, int]
    agents: list[str]


# --------------------------------------------------------------------------- reading


def _loader_kinds(runtime: Runtime) -> set[str]:
    return {loader.name for loader in runtime.plugins.loaders}


def _url_option_fields(runtime: Runtime) -> list[FieldSpec]:
    """The web loader's crawl options as form controls (generated from its schema)."""
    if "url" not in _loader_kinds(runtime):
        return []
    return fields_of(runtime.plugins.loaders.get("url").options_schema, prefix=OPTIONS_PREFIX)


def _source_rows(runtime: Runtime, sources: list[Source]) -> list[SourceRow]:
    indexer = runtime.services.knowledge_indexer
    return [
        SourceRow(
            source,
            indexing_progress(runtime, source),
            indexer.is_queued(source.id) if indexer is not None else False,
        )
        for source in sources
    ]


async def _kb_of(request: Request, viewer: SignedIn) -> KnowledgeBase:
    async with runtime_of(request).db.sessions() as session:
        return await get_knowledge_base(session, viewer.workspace_id, request.path_params["kb_id"])


async def _source_of(request: Request, viewer: SignedIn, knowledge_base: KnowledgeBase) -> Source:
    """The source in the URL, only if it belongs to this knowledge base (of this workspace)."""
    async with runtime_of(request).db.sessions() as session:
        source = await get_source(session, viewer.workspace_id, request.path_params["source_id"])
    if source.knowledge_base_id != knowledge_base.id:
        raise NotFound(f"source {source.id!r} not found in this knowledge base")
    return source


def _page_number(request: Request) -> int:
    text = request.query_params.get("page", "1")
    return max(1, min(int(text), 100_000)) if text.isdigit() else 1


async def _sources_context(request: Request, viewer: SignedIn, knowledge_base: KnowledgeBase) -> dict[str, Any]:
    """One page of sources, newest first, and the counts of all of them."""
    runtime = runtime_of(request)
    async with runtime.db.sessions() as session:
        stats = await knowledge_base_stats(session, viewer.workspace_id, knowledge_base.id)
        pages = max(1, -(-stats["sources"] // SOURCES_PER_PAGE))
        number = min(_page_number(request), pages)
        sources = list(
            await list_sources(
                session,
                viewer.workspace_id,
                knowledge_base.id,
                newest_first=True,
                offset=(number - 1) * SOURCES_PER_PAGE,
                limit=SOURCES_PER_PAGE,
            )
        )
    return {
        "kb": knowledge_base,
        "stats": stats,
        "rows": _source_rows(runtime, sources),
        "page": number,
        "pages": pages,
        # Any source of the knowledge base still on its way, on this page or another.
        "polling": stats["pending"] + stats["indexing"] > 0,
        "poll_seconds": POLL_SECONDS,
    }


async def _detail_context(request: Request, viewer: SignedIn, knowledge_base: KnowledgeBase) -> dict[str, Any]:
    runtime = runtime_of(request)
    context = await _sources_context(request, viewer, knowledge_base)
    async with runtime.db.sessions() as session:
        agents = await agents_using_knowledge_base(session, viewer.workspace_id, knowledge_base.id)
    kinds = _loader_kinds(runtime)
    context.update(
        section="knowledge",
        agents=agents,
        kinds=kinds,
        url_fields=_url_option_fields(runtime),
        refresh_choices=REFRESH_CHOICES,
        max_upload_bytes=runtime.settings.max_upload_bytes,
        max_files=MAX_FILES_PER_UPLOAD,
        search_k=SEARCH_K,
        max_search_k=MAX_SEARCH_K,
        notice=await _notice(request, viewer, knowledge_base),
        rename_form=Form(values={"name": knowledge_base.name}),
        upload_form=Form(),
        url_form=Form(),
        text_form=Form(),
        delete_form=Form(),
        search_form=Form(values={"k": str(SEARCH_K)}),
        results=None,
    )
    return context


async def _notice(request: Request, viewer: SignedIn, knowledge_base: KnowledgeBase) -> str:
    """The one-line result of the action that redirected here: from a fixed list, and names
    read from the database (never the URL's own text)."""
    params = request.query_params
    if "added" in params:
        return await _added_notice(request, viewer, knowledge_base, params["added"])
    if params.get("resynced", "").isdigit():
        count = int(params["resynced"])
        return f"Re-syncing {count} source(s)." if count else "Nothing to re-sync: every source is up to date."
    if "removed" in params:
        return "The source was removed; its passages are gone from search."
    if "renamed" in params:
        return "Renamed."
    if "created" in params:
        return "Knowledge base created. Add files, a website or text below."
    return ""


async def _added_notice(request: Request, viewer: SignedIn, knowledge_base: KnowledgeBase, added: str) -> str:
    """The notice after an add ("Added menu.pdf and prices.csv: ..."): the sources whose ids
    the add's redirect carries in ``added``, those of this knowledge base only."""
    ids = [source_id for source_id in added.split(",")[:MAX_FILES_PER_UPLOAD] if source_id.isalnum()]
    async with runtime_of(request).db.sessions() as session:
        found = {
            source.id: source  # removed since, or of another knowledge base: not found
            for source in await list_sources(session, viewer.workspace_id, knowledge_base.id, ids=ids)
        }
    names = [SourceRow(found[source_id], None, False).name for source_id in ids if source_id in found]
    if not names:
        return ""
    shown = names
    if len(names) > ADDED_NAMES_SHOWN:
        shown = [*names[: ADDED_NAMES_SHOWN - 1], f"{len(names) - ADDED_NAMES_SHOWN + 1} more"]
    listed = shown[0] if len(shown) == 1 else ", ".join(shown[:-1]) + " and " + shown[-1]
    pronoun = "it is" if len(names) == 1 else "they are"
    return f"Added {listed}: {pronoun} being indexed in the background."


def _detail(request: Request, context: dict[str, Any], status_code: int = 200) -> Response:
    return render(request, "knowledge/detail.html", context, status_code=status_code)


def _back(knowledge_base: KnowledgeBase, query: str = "") -> Response:
    return RedirectResponse(f"/dashboard/knowledge/{knowledge_base.id}" + (f"?{query}" if query else ""), status_code=303)


# --------------------------------------------------------------------------- pages


@page
async def index(request: Request, viewer: SignedIn) -> Response:
    return await _index(request, viewer, Form())


async def _index(request: Request, viewer: SignedIn, create_form: Form, status_code: int = 200) -> Response:
    async with runtime_of(request).db.sessions() as session:
        bases = list(await list_knowledge_bases(session, viewer.workspace_id))
        rows = [
            KnowledgeBaseRow(
                base,
                await knowledge_base_stats(session, viewer.workspace_id, base.id),
                await agents_using_knowledge_base(session, viewer.workspace_id, base.id),
            )
            for base in bases
        ]
    deleted = request.query_params.get("deleted") is not None
    plugins = runtime_of(request).plugins
    context = {
        "section": "knowledge",
        "rows": rows,
        "create_form": create_form,
        "deleted": deleted,
        "max_name": MAX_NAME_LENGTH,
        "embeddings": sorted(plugins.embeddings, key=lambda kind: (not kind.default, kind.name)),
    }
    return render(request, "knowledge/index.html", context, status_code=status_code)


@page
async def create(request: Request, viewer: SignedIn) -> Response:
    form = await Form.read(request)
    name = form.text("name", required=True, label="name", max_length=MAX_NAME_LENGTH)
    embedding_model = form.text("embedding_model", label="embedding_model", max_length=200) or None
    if form.ok:
        runtime = runtime_of(request)
        try:
            async with runtime.db.session() as session:
                created = await create_knowledge_base(
                    session, viewer.workspace_id, name, embedding_model=embedding_model, runtime=runtime
                )
            return RedirectResponse(f"/dashboard/knowledge/{created.id}?created", status_code=303)
        except Conflict as exc:  # the name is taken
            form.error("name", f"name: {exc}")
        except CallableError as exc:
            form.fail(exc)
    return await _index(request, viewer, form, status_code=422)


@page
async def detail(request: Request, viewer: SignedIn) -> Response:
    knowledge_base = await _kb_of(request, viewer)
    return _detail(request, await _detail_context(request, viewer, knowledge_base))


@page
async def sources_fragment(request: Request, viewer: SignedIn) -> Response:
    """The sources table alone: what the page polls while something is indexing."""
    knowledge_base = await _kb_of(request, viewer)
    context = await _sources_context(request, viewer, knowledge_base)
    return render(request, "knowledge/_sources.html", context, headers={"Cache-Control": "no-store"})


@page
async def rename(request: Request, viewer: SignedIn) -> Response:
    knowledge_base = await _kb_of(request, viewer)
    form = await Form.read(request)
    name = form.text("name", required=True, label="name", max_length=MAX_NAME_LENGTH)
    if form.ok:
        try:
            async with runtime_of(request).db.session() as session:
                await rename_knowledge_base(session, viewer.workspace_id, knowledge_base.id, name)
            return _back(knowledge_base, "renamed")
        except CallableError as exc:
            form.fail(exc)
    context = await _detail_context(request, viewer, knowledge_base)
    context["rename_form"] = form
    return _detail(request, context, 422)


@page
async def delete(request: Request, viewer: SignedIn) -> Response:
    knowledge_base = await _kb_of(request, viewer)
    runtime = runtime_of(request)
    try:
        async with runtime.db.session() as session:
            await delete_knowledge_base(session, viewer.workspace_id, knowledge_base.id, if_unused=True)
    except CallableError as exc:
        context = await _detail_context(request, viewer, knowledge_base)
        context["delete_form"] = Form(errors={GENERAL: str(exc)})
        return _detail(request, context, 409)
    KnowledgeService.of(runtime).forget(knowledge_base.id)
    return RedirectResponse("/dashboard/knowledge?deleted", status_code=303)


async def _add(
    request: Request, viewer: SignedIn, knowledge_base: KnowledgeBase, drafts: list[dict[str, Any]]
) -> list[str]:
    """Add every draft or none (one transaction), then queue them for indexing.

    Several drafts (files) are each checked; the refusal names every file at fault.
    """
    runtime = runtime_of(request)
    added: list[Source] = []
    problems: list[str] = []
    async with runtime.db.session() as session:
        for fields in drafts:
            try:
                added.append(
                    await add_source(
                        session, viewer.workspace_id, knowledge_base.id, runtime=runtime, replace=True, **fields
                    )
                )
            except CallableError as exc:
                if len(drafts) == 1:
                    raise
                problems.append(f"{fields['location']}: {re.sub(r'^(file|location): ', '', str(exc))}")
        if problems:
            raise InvalidInput("; ".join(problems))  # rolls the whole batch back
        ids = [source.id for source in added]
    index_in_background(runtime, viewer.workspace_id, ids)
    return ids


async def _refused(
    request: Request, viewer: SignedIn, knowledge_base: KnowledgeBase, name: str, form: Form
) -> Response:
    context = await _detail_context(request, viewer, knowledge_base)
    context[name] = form
    return _detail(request, context, 422)


@page
async def add_text(request: Request, viewer: SignedIn) -> Response:
    knowledge_base = await _kb_of(request, viewer)
    form = await Form.read(request)
    title = form.text("title", required=True, label="title", max_length=MAX_TITLE_LENGTH)
    text = form.get("text")
    if not text.strip():
        form.error("text", "text: expected some text, got nothing")
    if form.ok:
        try:
            ids = await _add(
                request,
                viewer,
                knowledge_base,
                [{"kind": "text", "location": title, "title": title, "content": text.encode()}],
            )
            return _back(knowledge_base, "added=" + ",".join(ids))
        except CallableError as exc:
            form.fail(exc)
    return await _refused(request, viewer, knowledge_base, "text_form", form)


@page
async def add_url(request: Request, viewer: SignedIn) -> Response:
    knowledge_base = await _kb_of(request, viewer)
    runtime = runtime_of(request)
    form = await Form.read(request)
    url = form.text("url", required=True, label="url", max_length=2000)
    options = data_from_form(_url_option_fields(runtime), form)
    interval_text = form.get("refresh_every")
    if interval_text not in {value for value, _ in REFRESH_CHOICES}:
        form.error("refresh_every", "refresh_every: expected one of the listed intervals")
    if form.ok:
        try:
            ids = await _add(
                request,
                viewer,
                knowledge_base,
                [
                    {
                        "kind": "url",
                        "location": url,
                        "options": options,
                        "refresh_interval_seconds": int(interval_text) if interval_text else None,
                    }
                ],
            )
            return _back(knowledge_base, "added=" + ",".join(ids))
        except CallableError as exc:
            _url_errors(form, exc)
    return await _refused(request, viewer, knowledge_base, "url_form", form)


def _url_errors(form: Form, exc: CallableError) -> None:
    """Put the loader's complaints on the controls: ``location`` is the URL box, each
    ``options.X`` its crawl option; anything else goes above the form."""
    message = str(exc)
    message = re.sub(r"^\w+ source: ", "", message)
    for problem in message.split("; "):
        head = problem.partition(":")[0].strip()
        if head == "location":
            form.error("url", "url" + problem[len("location") :])
        elif head.startswith(OPTIONS_PREFIX):
            form.error(head, problem)
        else:
            form.error(GENERAL, problem)


@page
async def add_files(request: Request, viewer: SignedIn) -> Response:
    knowledge_base = await _kb_of(request, viewer)
    runtime = runtime_of(request)
    limit = runtime.settings.max_upload_bytes
    submitted = await request.form()
    form = Form.of(submitted)
    uploads = [item for item in submitted.getlist("files") if isinstance(item, UploadFile) and item.filename]
    if not uploads:
        form.error("files", "files: choose one or more files (PDF, DOCX, Markdown, HTML, CSV or text)")
    elif len(uploads) > MAX_FILES_PER_UPLOAD:
        form.error("files", f"files: at most {MAX_FILES_PER_UPLOAD} files at once, got {len(uploads)}")
    drafts: list[dict[str, Any]] = []
    problems: list[str] = []
    for upload in uploads if form.ok else []:
        name = (upload.filename or "").replace("\\", "/").rsplit("/", 1)[-1]
        content = await upload.read(limit + 1)
        if len(content) > limit:
            size = upload.size if upload.size is not None else len(content)
            problems.append(f"{name}: {size:,} bytes is over the upload limit of {limit:,} bytes")
            continue
        drafts.append(
            {"kind": "file", "location": name, "content": content, "options": _content_type(upload.content_type)}
        )
    if form.ok and not problems:
        try:
            ids = await _add(request, viewer, knowledge_base, drafts)
            return _back(knowledge_base, "added=" + ",".join(ids))
        except CallableError as exc:
            message = str(exc)
            problems.append(message if len(drafts) > 1 else f"{drafts[0]['location']}: {re.sub(r'^(file|location): ', '', message)}")
    if problems:
        form.error("files", "files: nothing was added. " + "; ".join(problems))
    return await _refused(request, viewer, knowledge_base, "upload_form", form)


def _content_type(declared: str | None) -> dict[str, Any]:
    """The type the browser declared, when it says something (the loader sniffs the bytes anyway)."""
    if not declared or declared == "application/octet-stream":
        return {}
    return {"content_type": declared[:200]}


@page
async def resync_all(request: Request, viewer: SignedIn) -> Response:
    knowledge_base = await _kb_of(request, viewer)
    ids = await refresh_in_background(runtime_of(request), viewer.workspace_id, knowledge_base_id=knowledge_base.id)
    return _back(knowledge_base, f"resynced={len(ids)}")


@page
async def resync_source(request: Request, viewer: SignedIn) -> Response:
    """Re-sync one source (the Retry of a failed one): loaded again, re-indexed if it changed."""
    knowledge_base = await _kb_of(request, viewer)
    source = await _source_of(request, viewer, knowledge_base)
    ids = await refresh_in_background(
        runtime_of(request), viewer.workspace_id, knowledge_base_id=knowledge_base.id, source_ids=[source.id]
    )
    return _back(knowledge_base, f"resynced={len(ids)}")


@page
async def remove(request: Request, viewer: SignedIn) -> Response:
    knowledge_base = await _kb_of(request, viewer)
    source = await _source_of(request, viewer, knowledge_base)
    runtime = runtime_of(request)
    async with runtime.db.session() as session:
        await remove_source(session, viewer.workspace_id, source.id)
    await KnowledgeService.of(runtime).refresh_index(viewer.workspace_id, knowledge_base.id)
    return _back(knowledge_base, "removed")


@page
async def search(request: Request, viewer: SignedIn) -> Response:
    """The retrieval test: the agent's hybrid search over this knowledge base."""
    knowledge_base = await _kb_of(request, viewer)
    runtime = runtime_of(request)
    form = Form(values={key: value for key, value in request.query_params.items()})
    question = form.text("q", required=True, label="question", max_length=MAX_QUESTION_LENGTH)
    k_text = form.get("k", str(SEARCH_K)).strip() or str(SEARCH_K)
    k = int(k_text) if k_text.isdigit() else 0
    if not 1 <= k <= MAX_SEARCH_K:
        form.error("k", f"k: expected a whole number of passages from 1 to {MAX_SEARCH_K}")
    passages: list[Passage] = []
    if form.ok:
        try:
            passages = await KnowledgeService.of(runtime).search(viewer.workspace_id, [knowledge_base.id], question, k=k)
        except CallableError as exc:
            form.fail(exc)
    context = await _detail_context(request, viewer, knowledge_base)
    names: dict[str, str] = {}
    async with runtime.db.sessions() as session:
        for source_id in {passage.source_id for passage in passages}:
            source = await get_source(session, viewer.workspace_id, source_id)
            names[source_id] = source.title or source.location
    context.update(search_form=form, results=[(passage, names.get(passage.source_id, "")) for passage in passages] if form.ok else None)
    status_code = 200 if form.ok else 422
    if is_htmx(request):
        return render(request, "knowledge/_results.html", context, status_code=status_code)
    return _detail(request, context, status_code)


def routes() -> list[BaseRoute]:
    return [
        Route("/knowledge", index, methods=["GET"]),
        Route("/knowledge", create, methods=["POST"]),
        Route("/knowledge/{kb_id}", detail, methods=["GET"]),
        Route("/knowledge/{kb_id}/sources", sources_fragment, methods=["GET"]),
        Route("/knowledge/{kb_id}/search", search, methods=["GET"]),
        Route("/knowledge/{kb_id}/rename", rename, methods=["POST"]),
        Route("/knowledge/{kb_id}/delete", delete, methods=["POST"]),
        Route("/knowledge/{kb_id}/files", add_files, methods=["POST"]),
        Route("/knowledge/{kb_id}/urls", add_url, methods=["POST"]),
        Route("/knowledge/{kb_id}/texts", add_text, methods=["POST"]),
        Route("/knowledge/{kb_id}/resync", resync_all, methods=["POST"]),
        Route("/knowledge/{kb_id}/sources/{source_id}/resync", resync_source, methods=["POST"]),
        Route("/knowledge/{kb_id}/sources/{source_id}/remove", remove, methods=["POST"]),
    ]
