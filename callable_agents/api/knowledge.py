"""Knowledge bases and their sources in the admin API, and the retrieval test.

Adding a source stores it *pending* and answers 202 at once; this process indexes it in the
background (:func:`~callable_agents.core.knowledge.background.index_in_background`), so
polling the source shows ``indexing`` (with ``progress`` while this process runs it) then
``ready`` (with passage counts) or ``failed`` (with the reason). Text and URLs come as JSON;
files as ``multipart/form-data`` (several ``file`` parts at once). Every operation is a
:mod:`callable_agents.core.knowledge` call, the same the CLI and the dashboard make.
"""

from __future__ import annotations

import re
from typing import Any

from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from callable_agents.api.requests import (
    authenticated,
    json_body,
    object_field,
    only_fields,
    path_id,
    text_field,
)
from callable_agents.core.config import Settings
from callable_agents.core.errors import InvalidInput
from callable_agents.core.knowledge import (
    SEARCH_MODES,
    KnowledgeService,
    SearchMode,
    create_knowledge_base,
    delete_knowledge_base,
    find_source,
    get_knowledge_base,
    index_in_background,
    indexing_progress,
    knowledge_base_stats,
    list_knowledge_bases,
    list_sources,
)
from callable_agents.core.knowledge.manage import (
    add_file_source,
    add_text_source,
    add_url_source,
    describe_knowledge_base,
    describe_source,
    remove_source_and_update_index,
    resync_in_background,
)
from callable_agents.core.knowledge.search import MAX_K
from callable_agents.core.knowledge.store import rename_knowledge_base
from callable_agents.core.models import Source, Workspace
from callable_agents.core.runtime import runtime_of

MAX_TEXT_CHARACTERS = 5_000_000
MAX_FILES = 10  # per upload request
# The upload endpoint may take a body of MAX_FILES files at the largest size (the server's
# BodySizeLimit); every other body is held to CALLABLE_MAX_REQUEST_BYTES.
API_UPLOAD_PATHS = (re.compile(r"/api/v1/knowledge-bases/[^/]+/sources/files"),)


def api_upload_body_limit(settings: Settings) -> int:
    """The largest upload request: the most files at once at the largest size, plus the form."""
    return settings.max_upload_bytes * MAX_FILES + settings.max_request_bytes


TEXT_FIELDS = ("kind", "title", "text", "index")
URL_FIELDS = ("kind", "url", "options", "refresh_interval_seconds", "index")


async def list_knowledge_bases_endpoint(request: Request, workspace: Workspace) -> Response:
    """The workspace's knowledge bases with source counts by status.
    ---
    summary: The workspace's knowledge bases, with source counts by status and passage counts.
    responses:
      200: {description: "knowledge bases"}
    """
    async with runtime_of(request).db.sessions() as session:
        views = [
            describe_knowledge_base(base, await knowledge_base_stats(session, workspace.id, base.id))
            for base in await list_knowledge_bases(session, workspace.id)
        ]
    return JSONResponse({"knowledge_bases": views})


async def create_knowledge_base_endpoint(request: Request, workspace: Workspace) -> Response:
    """Create an empty knowledge base.
    ---
    summary: Create an empty knowledge base.
    requestBody:
      required: true
      content:
        application/json:
          schema:
            type: object
            required: [name]
            properties:
              name: {type: string}
              embedding_model: {type: string, description: "wordllama (local, the default), openai[:MODEL[@INTEGRATION]], or a plugin's"}
    responses:
      201: {description: "the knowledge base"}
      409: {description: "the name is taken"}
      422: {description: "a field is malformed"}
    """
    runtime = runtime_of(request)
    body = await json_body(request, allowed=("name", "embedding_model"))
    name = text_field(body, "name", max_length=200)
    model = body.get("embedding_model")
    if model is not None and (not isinstance(model, str) or not model.strip()):
        raise InvalidInput("embedding_model: expected a model name such as wordllama or openai", field="embedding_model")
    async with runtime.db.session() as session:
        created = await create_knowledge_base(session, workspace.id, name, embedding_model=model, runtime=runtime)
        view = describe_knowledge_base(created, await knowledge_base_stats(session, workspace.id, created.id))
    return JSONResponse(view, status_code=201)


async def get_knowledge_base_endpoint(request: Request, workspace: Workspace) -> Response:
    """One knowledge base with its sources.
    ---
    summary: One knowledge base, by id or name, with its sources and their status.
    responses:
      200: {description: "the knowledge base and its sources"}
      404: {description: "not in this workspace"}
    """
    async with runtime_of(request).db.sessions() as session:
        base = await get_knowledge_base(session, workspace.id, path_id(request, "kb"))
        view = describe_knowledge_base(base, await knowledge_base_stats(session, workspace.id, base.id))
        sources = await list_sources(session, workspace.id, base.id)
    return JSONResponse({**view, "sources": [source_view(request, source) for source in sources]})


async def rename_knowledge_base_endpoint(request: Request, workspace: Workspace) -> Response:
    """Rename a knowledge base (agents keep it: they refer to it by id).
    ---
    summary: Rename a knowledge base (agents keep it).
    requestBody:
      required: true
      content:
        application/json:
          schema:
            type: object
            required: [name]
            properties:
              name: {type: string}
    responses:
      200: {description: "the knowledge base"}
      404: {description: "not in this workspace"}
      409: {description: "the name is taken"}
      422: {description: "name is malformed"}
    """
    body = await json_body(request, allowed=("name",))
    name = text_field(body, "name", max_length=200)
    async with runtime_of(request).db.session() as session:
        base = await rename_knowledge_base(session, workspace.id, path_id(request, "kb"), name)
        view = describe_knowledge_base(base, await knowledge_base_stats(session, workspace.id, base.id))
    return JSONResponse(view)


async def delete_knowledge_base_endpoint(request: Request, workspace: Workspace) -> Response:
    """Delete a knowledge base with its sources and passages, unless agents search it.
    ---
    summary: Delete a knowledge base with all its sources and passages (refused while agents use it, naming them).
    responses:
      204: {description: "deleted"}
      404: {description: "not in this workspace"}
      409: {description: "agents use it"}
    """
    runtime = runtime_of(request)
    async with runtime.db.session() as session:
        deleted = await delete_knowledge_base(session, workspace.id, path_id(request, "kb"), if_unused=True)
    KnowledgeService.of(runtime).forget(deleted.id)
    return Response(status_code=204)


def _index_flag(body: dict[str, Any]) -> bool:
    index = body.get("index", True)
    if not isinstance(index, bool):
        raise InvalidInput(
            "index: expected true (index now, the default) or false (leave it pending for the server's refresh loop)",
            field="index",
        )
    return index


def source_view(request: Request, source: Source) -> dict[str, Any]:
    """:func:`describe_source` plus ``progress`` while this process indexes it (the stage,
    done of total, e.g. embedding 40 of 120 passages)."""
    view = describe_source(source)
    progress = indexing_progress(runtime_of(request), source)
    view["progress"] = (
        {"stage": progress.stage, "done": progress.done, "total": progress.total, "message": progress.message}
        if progress is not None
        else None
    )
    return view


def _accepted(request: Request, source: Source) -> Response:
    return JSONResponse(source_view(request, source), status_code=202)


async def add_source_endpoint(request: Request, workspace: Workspace) -> Response:
    """Add pasted text or a URL; it is indexed in the background.
    ---
    summary: Add pasted text ({kind text, title, text}) or a URL ({kind url, url, options, refresh_interval_seconds}).
    description: >
      The source is stored pending and indexed in the background; poll it to see indexing,
      then ready or failed with the reason. The same title (text) or URL replaces the earlier source.
      URL options are mode (page, crawl or sitemap), max_pages and max_depth.
    requestBody:
      required: true
      content:
        application/json:
          schema:
            type: object
            required: [kind]
            properties:
              kind: {type: string, enum: [text, url]}
              title: {type: string}
              text: {type: string}
              url: {type: string}
              options: {type: object, properties: {mode: {type: string, enum: [page, crawl, sitemap]}, max_pages: {type: integer}, max_depth: {type: integer}}}
              refresh_interval_seconds: {type: integer, minimum: 300}
              index: {type: boolean, default: true}
    responses:
      202: {description: "the source, pending (being indexed)"}
      404: {description: "no such knowledge base in this workspace"}
      409: {description: "that source is being indexed right now"}
      422: {description: "a field is missing or malformed (error.field names it)"}
    """
    runtime = runtime_of(request)
    body = await json_body(request)
    kind = body.get("kind")
    index = _index_flag(body)
    async with runtime.db.session() as session:
        base = await get_knowledge_base(session, workspace.id, path_id(request, "kb"))
        if kind == "text":
            only_fields(body, TEXT_FIELDS)
            title = text_field(body, "title", max_length=500)
            text = text_field(body, "text", max_length=MAX_TEXT_CHARACTERS)
            source = await add_text_source(session, runtime, workspace.id, base.id, title=title, text=text.encode())
        elif kind == "url":
            only_fields(body, URL_FIELDS)
            interval = body.get("refresh_interval_seconds")
            if interval is not None and (not isinstance(interval, int) or isinstance(interval, bool)):
                raise InvalidInput(
                    "refresh_interval_seconds: expected a whole number of seconds", field="refresh_interval_seconds"
                )
            source = await add_url_source(
                session, runtime, workspace.id, base.id, url=text_field(body, "url", max_length=2000),
                options=object_field(body, "options"), refresh_interval_seconds=interval,
            )
        else:
            raise InvalidInput(
                "kind: expected 'text' or 'url' (upload files to .../sources/files as multipart/form-data)",
                field="kind",
            )
    if index:
        index_in_background(runtime, workspace.id, [source.id])
    return _accepted(request, source)


Upload = tuple[str, bytes, str | None]  # file name, content, declared content type


async def _read_uploads(request: Request, limit: int) -> tuple[list[Upload], str]:
    """The multipart body's ``file`` parts and its ``title`` field; 422 naming what is wrong."""
    try:
        form = await request.form(max_files=MAX_FILES, max_fields=10, max_part_size=64 * 1024)
    except HTTPException as exc:  # a malformed body, or more parts than allowed
        raise InvalidInput(f"file: {exc.detail} (at most {MAX_FILES} files per request)", field="file") from None
    try:
        files = [part for part in form.getlist("file") if isinstance(part, UploadFile)]
        title = form.get("title")
        if not files:
            raise InvalidInput("file: expected one or more 'file' parts (files, not text fields)", field="file")
        if title is not None and (not isinstance(title, str) or len(files) > 1):
            raise InvalidInput("title: give it as a text field, for one file at a time", field="title")
        uploads: list[Upload] = []
        for part in files:
            name = (part.filename or "").strip()
            if not name:
                raise InvalidInput("file: every part needs a file name", field="file")
            if part.size is not None and part.size > limit:
                raise InvalidInput(
                    f"file: {name!r} is {part.size:,} bytes, over the upload limit of {limit:,} bytes "
                    "(CALLABLE_MAX_UPLOAD_BYTES)",
                    field="file",
                )
            uploads.append((name, await part.read(), part.content_type))
        return uploads, title or ""
    finally:
        await form.close()


async def upload_files_endpoint(request: Request, workspace: Workspace) -> Response:
    """Upload files (several ``file`` parts at once); each is indexed in the background.
    ---
    summary: Upload files (PDF, DOCX, Markdown, HTML, CSV, text); a file of the same name replaces the earlier one.
    requestBody:
      required: true
      content:
        multipart/form-data:
          schema:
            type: object
            required: [file]
            properties:
              file: {type: array, items: {type: string, format: binary}}
              title: {type: string, description: "for one file only; default: the document's own title, else its name"}
    responses:
      202: {description: "{sources}, pending (being indexed)"}
      404: {description: "no such knowledge base in this workspace"}
      422: {description: "no file, an unsupported type, an empty or too large file (error.field names it)"}
    """
    runtime = runtime_of(request)
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise InvalidInput("file: expected a multipart/form-data body with one or more 'file' parts", field="file")
    async with runtime.db.sessions() as session:  # 404 before reading the upload
        base = await get_knowledge_base(session, workspace.id, path_id(request, "kb"))
    uploads, title = await _read_uploads(request, runtime.settings.max_upload_bytes)
    added = []
    async with runtime.db.session() as session:  # every file or none
        for name, content, content_type in uploads:
            added.append(
                await add_file_source(
                    session, runtime, workspace.id, base.id, file_name=name, content=content,
                    title=title, content_type=content_type,
                )
            )
    index_in_background(runtime, workspace.id, [source.id for source in added])
    return JSONResponse({"sources": [source_view(request, source) for source in added]}, status_code=202)


async def _source_of(request: Request, workspace: Workspace) -> Source:
    async with runtime_of(request).db.sessions() as session:
        base = await get_knowledge_base(session, workspace.id, path_id(request, "kb"))
        return await find_source(session, workspace.id, base.id, path_id(request, "source"))


async def list_sources_endpoint(request: Request, workspace: Workspace) -> Response:
    """A knowledge base's sources.
    ---
    summary: A knowledge base's sources with status (pending, indexing, ready, failed with the reason) and counts.
    responses:
      200: {description: "sources"}
      404: {description: "no such knowledge base in this workspace"}
    """
    async with runtime_of(request).db.sessions() as session:
        base = await get_knowledge_base(session, workspace.id, path_id(request, "kb"))
        sources = await list_sources(session, workspace.id, base.id)
    return JSONResponse({"sources": [source_view(request, source) for source in sources]})


async def get_source_endpoint(request: Request, workspace: Workspace) -> Response:
    """One source, by id.
    ---
    summary: One source, with its status, the failure reason and counts.
    responses:
      200: {description: "the source"}
      404: {description: "not in this knowledge base"}
    """
    return JSONResponse(source_view(request, await _source_of(request, workspace)))


async def resync_source_endpoint(request: Request, workspace: Workspace) -> Response:
    """Index one source again (re-fetch a URL, retry a failed one), in the background.
    ---
    summary: Re-sync one source (a URL is fetched again; a failed source retried); only changed content is embedded.
    responses:
      202: {description: "the source, pending until indexing starts"}
      404: {description: "not in this knowledge base"}
    """
    source = await _source_of(request, workspace)
    [marked] = await resync_in_background(runtime_of(request), workspace.id, source_ids=[source.id])
    return _accepted(request, marked)


async def resync_knowledge_base_endpoint(request: Request, workspace: Workspace) -> Response:
    """Re-sync a whole knowledge base in the background.
    ---
    summary: Re-sync all of a knowledge base (URLs fetched again, pending and failed sources retried).
    responses:
      202: {description: "{sources} re-synced (pending until indexing starts)"}
      404: {description: "no such knowledge base in this workspace"}
    """
    runtime = runtime_of(request)
    async with runtime.db.sessions() as session:
        base = await get_knowledge_base(session, workspace.id, path_id(request, "kb"))
    sources = await resync_in_background(runtime, workspace.id, knowledge_base_id=base.id)
    return JSONResponse({"sources": [source_view(request, source) for source in sources]}, status_code=202)


async def remove_source_endpoint(request: Request, workspace: Workspace) -> Response:
    """Remove a source and its passages.
    ---
    summary: Remove a source and its passages (gone from answers at once).
    responses:
      204: {description: "removed"}
      404: {description: "not in this knowledge base"}
    """
    source = await _source_of(request, workspace)
    await remove_source_and_update_index(runtime_of(request), workspace.id, source.id)
    return Response(status_code=204)


async def search_endpoint(request: Request, workspace: Workspace) -> Response:
    """The retrieval test: the passages the agent would get for a question, ranked.
    ---
    summary: Retrieval test; the passages an agent would get for a question, best first, with scores.
    requestBody:
      required: true
      content:
        application/json:
          schema:
            type: object
            required: [query]
            properties:
              query: {type: string}
              k: {type: integer, minimum: 1, maximum: 50, default: 4}
              mode: {type: string, enum: [hybrid, dense, keyword], default: hybrid}
    responses:
      200: {description: "{passages} with rank, score, text, title, url, page and source_id"}
      404: {description: "no such knowledge base in this workspace"}
      422: {description: "a field is malformed"}
    """
    runtime = runtime_of(request)
    body = await json_body(request, allowed=("query", "k", "mode"))
    query = text_field(body, "query", max_length=2000)
    k = body.get("k", 4)
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= MAX_K:
        raise InvalidInput(f"k: expected a whole number from 1 to {MAX_K}", field="k")
    mode: SearchMode = body.get("mode", "hybrid")
    if mode not in SEARCH_MODES:
        raise InvalidInput(f"mode: expected one of {', '.join(SEARCH_MODES)}", field="mode")
    async with runtime.db.sessions() as session:
        base = await get_knowledge_base(session, workspace.id, path_id(request, "kb"))
    passages = await KnowledgeService.of(runtime).search(workspace.id, [base.id], query, k=k, mode=mode)
    return JSONResponse(
        {
            "passages": [
                {"rank": rank, "score": passage.score, "text": passage.text, "chunk_id": passage.chunk_id, **passage.citation()}
                for rank, passage in enumerate(passages, start=1)
            ]
        }
    )


def knowledge_routes() -> list[BaseRoute]:
    base = "/knowledge-bases/{kb}"
    source = base + "/sources/{source}"
    return [
        Route("/knowledge-bases", authenticated(list_knowledge_bases_endpoint), methods=["GET"]),
        Route("/knowledge-bases", authenticated(create_knowledge_base_endpoint), methods=["POST"]),
        Route(base, authenticated(get_knowledge_base_endpoint), methods=["GET"]),
        Route(base, authenticated(rename_knowledge_base_endpoint), methods=["PATCH"]),
        Route(base, authenticated(delete_knowledge_base_endpoint), methods=["DELETE"]),
        Route(base + "/refresh", authenticated(resync_knowledge_base_endpoint), methods=["POST"]),
        Route(base + "/search", authenticated(search_endpoint), methods=["POST"]),
        Route(base + "/sources", authenticated(list_sources_endpoint), methods=["GET"]),
        Route(base + "/sources", authenticated(add_source_endpoint), methods=["POST"]),
        Route(base + "/sources/files", authenticated(upload_files_endpoint), methods=["POST"]),
        Route(source, authenticated(get_source_endpoint), methods=["GET"]),
        Route(source, authenticated(remove_source_endpoint), methods=["DELETE"]),
        Route(source + "/refresh", authenticated(resync_source_endpoint), methods=["POST"]),
    ]
