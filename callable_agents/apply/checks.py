"""Checking a document without the database: every field, plugin schemas, sources read.

:func:`check_document` reports every problem at once (an :class:`ApplyError` naming line and
field) or returns the :class:`Plan` to write. References to stored objects are checked
later, in the write's transaction (:mod:`.write`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from callable_agents.apply.document import Problems, parse_yaml
from callable_agents.apply.files import SourcePathError, read_source_file, source_file_path
from callable_agents.apply.plan import Plan, SourcePlan
from callable_agents.apply.schema import DocumentInput, KnowledgeBaseInput, SourceInput
from callable_agents.apply.values import BASE_URL_VARIABLE, secret_problems, secret_references, substitute_variables
from callable_agents.core.contracts.loaders import SourceDraft
from callable_agents.core.errors import CallableError
from callable_agents.core.knowledge.embeddings import check_model_spec
from callable_agents.core.runtime import Runtime
from callable_agents.core.store.agent_spec import (
    AgentSpecInput,
    Loc,
    Problem,
    SpecError,
    problems_from_validation_error,
    validate_agent_spec,
)
from callable_agents.core.store.channels import ChannelSpecInput, validate_channel_spec


def _plan_sources(
    runtime: Runtime,
    kb: KnowledgeBaseInput,
    kb_loc: Loc,
    base_dir: Path | None,
    source_root: Path | None,
    problems: Problems,
) -> list[SourcePlan]:
    plans: list[SourcePlan] = []
    seen: dict[tuple[str, str], int] = {}
    for index, raw in enumerate(kb.sources):
        loc = kb_loc + ("sources", index)
        try:
            source = SourceInput.model_validate(raw)
        except ValidationError as exc:
            problems.extend(problems_from_validation_error(exc, SourceInput, loc))
            continue
        plan = _plan_source(runtime, source, loc, base_dir, source_root, problems)
        if plan is None:
            continue
        key = (plan.kind, plan.identity)
        if key in seen:
            problems.add(
                Problem(loc, f"the same {plan.kind} source {plan.label!r} is declared twice (also sources[{seen[key]}])")
            )
            continue
        seen[key] = index
        plans.append(plan)
    return plans


_KIND_FIELDS = {"text": ("text", "title"), "url": ("url",), "file": ("path",)}  # other kinds: location


def _plan_source(
    runtime: Runtime,
    source: SourceInput,
    loc: Loc,
    base_dir: Path | None,
    source_root: Path | None,
    problems: Problems,
) -> SourcePlan | None:
    loaders = runtime.plugins.loaders
    if source.kind not in loaders:
        known = ", ".join(sorted(loader.name for loader in loaders)) or "none"
        problems.add(Problem(loc + ("kind",), f"unknown source kind {source.kind!r}; loaded: {known}"))
        return None
    given = {name for name in ("text", "url", "path", "location") if getattr(source, name) is not None}
    required = _KIND_FIELDS.get(source.kind, ("location",))
    ok = True
    for name in required:
        value = getattr(source, name)
        if value is None or (isinstance(value, str) and not value.strip()):
            problems.add(Problem(loc + (name,), f"required for {source.kind} sources"))
            ok = False
    for name in sorted(given - set(required)):
        problems.add(Problem(loc + (name,), f"not a field of {source.kind} sources (they take {', '.join(required)})"))
        ok = False
    if not ok:
        return None
    loader = loaders.get(source.kind)
    try:
        options_model = loader.options_schema.model_validate(source.options)
    except ValidationError as exc:
        problems.extend(problems_from_validation_error(exc, loader.options_schema, loc + ("options",)))
        return None
    title = source.title.strip()
    content: bytes | None = None
    if source.kind == "text":
        location, identity = "", title
        content = (source.text or "").encode("utf-8")
    elif source.kind == "url":
        location = identity = (source.url or "").strip()
    elif source.kind == "file":
        raw = (source.path or "").strip()
        if base_dir is None:
            problems.add(Problem(loc + ("path",), "file sources need the YAML file on disk (paths are relative to it)"))
            return None
        try:
            file_path = source_file_path(
                raw, base_dir=base_dir, root=source_root or base_dir, data_dir=runtime.settings.data_dir
            )
            content = read_source_file(file_path, runtime.settings.max_upload_bytes)
        except SourcePathError as exc:
            problems.add(Problem(loc + ("path",), str(exc)))
            return None
        location = identity = Path(raw).as_posix()
    else:
        location = identity = (source.location or "").strip()
    if loader.check is not None:
        try:
            loader.check(
                SourceDraft(
                    settings=runtime.settings, location=location, title=title, options=options_model, content=content
                )
            )
        except CallableError as exc:
            problems.add(check_problem(loc, source.kind, str(exc)))
            return None
    if source.refresh_interval_seconds is not None and not loader.refreshable:
        problems.add(Problem(loc + ("refresh_interval_seconds",), f"{source.kind} sources don't change by themselves"))
        return None
    return SourcePlan(
        loc=loc,
        kind=source.kind,
        identity=identity,
        location=location,
        title=title,
        options=options_model.model_dump(mode="json", exclude_defaults=True),
        content=content,
        refresh_interval_seconds=source.refresh_interval_seconds,
    )


def check_problem(loc: Loc, kind: str, message: str) -> Problem:
    """A loader's check names its input ("location: ..."); point at the file's field for it."""
    field_name, sep, rest = message.partition(": ")
    fields = {"location": _KIND_FIELDS.get(kind, ("location",))[0], "text": "text", "title": "title", "options": "options"}
    if sep and field_name.split(".")[0] in fields:
        head, *tail = field_name.split(".")
        return Problem(loc + (fields[head], *tail), rest)
    return Problem(loc, message)


def check_document(
    runtime: Runtime,
    text: str,
    *,
    label: str,
    base_dir: Path | None,
    source_root: Path | None = None,
    workspace: str | None = None,
    skip_unregistered_channels: bool = False,
) -> tuple[Plan, dict[Loc, int], list[str]]:
    """Everything that can be checked without the database; raises :class:`ApplyError`.

    File sources are read from ``base_dir`` (the YAML file's folder) and must stay inside
    ``source_root`` (default: ``base_dir``); see :mod:`.files`.

    Returns the plan, the line of every location in the file and notes for the report.
    """
    notes: list[str] = []
    data, lines = parse_yaml(text, label)
    problems = Problems(lines)
    if not isinstance(data, dict):
        problems.add(Problem((), "expected a mapping with workspace, knowledge_bases, agents and channels"))
        problems.raise_if_any(label)
    if workspace is not None:
        declared = data.get("workspace")
        data["workspace"] = {**(declared if isinstance(declared, dict) else {}), "slug": workspace}
    data = substitute_variables(data, {BASE_URL_VARIABLE: runtime.settings.base_url}, problems)
    problems.extend(secret_problems(data))  # reported with every other problem, not alone
    references, malformed = secret_references(data)
    problems.extend(malformed)
    document: DocumentInput | None = None
    try:
        document = DocumentInput.model_validate(data)
    except ValidationError as exc:
        # Keep going with the items that are objects, so every problem is reported at once.
        problems.extend(problems_from_validation_error(exc, DocumentInput), data)

    def items(key: str) -> list[tuple[int, dict[str, Any]]]:
        value = getattr(document, key) if document is not None else data.get(key)
        return [(index, item) for index, item in enumerate(value or []) if isinstance(item, dict)] if isinstance(value, list) else []

    knowledge_bases: list[KnowledgeBaseInput] = []
    sources: dict[str, list[SourcePlan]] = {}
    for index, raw_kb in items("knowledge_bases"):
        loc: Loc = ("knowledge_bases", index)
        try:
            kb = KnowledgeBaseInput.model_validate(raw_kb)
        except ValidationError as exc:
            problems.extend(problems_from_validation_error(exc, KnowledgeBaseInput, loc), data)
            continue
        if kb.name in sources:
            problems.add(Problem(loc + ("name",), f"knowledge base {kb.name!r} is declared twice"))
            continue
        if kb.embedding_model is not None:
            try:
                check_model_spec(runtime.plugins, kb.embedding_model)
            except CallableError as exc:
                problems.add(Problem(loc + ("embedding_model",), str(exc).removeprefix("embedding_model: ")))
        knowledge_bases.append(kb)
        sources[kb.name] = _plan_sources(runtime, kb, loc, base_dir, source_root, problems)

    agents: list[AgentSpecInput] = []
    names: set[str] = set()
    for index, raw_agent in items("agents"):
        try:
            agent = validate_agent_spec(raw_agent, runtime)
        except SpecError as exc:
            problems.extend([problem.within("agents", index) for problem in exc.problems], data)
            continue
        if agent.name in names:
            problems.add(Problem(("agents", index, "name"), f"agent {agent.name!r} is declared twice"))
        names.add(agent.name)
        agents.append(agent)

    channels: list[ChannelSpecInput] = []
    names, slugs = set(), set()
    for index, raw_channel in items("channels"):
        kind = raw_channel.get("kind")
        if skip_unregistered_channels and isinstance(kind, str) and kind not in runtime.plugins.channels:
            notes.append(f"skipped channel {raw_channel.get('name')}: no loaded plugin provides channel type {kind!r}")
            continue
        try:
            channel = validate_channel_spec(raw_channel, runtime)
        except SpecError as exc:
            problems.extend([problem.within("channels", index) for problem in exc.problems], data)
            continue
        if channel.name in names:
            problems.add(Problem(("channels", index, "name"), f"channel {channel.name!r} is declared twice"))
        names.add(channel.name)
        if channel.slug is not None:
            if channel.slug in slugs:
                problems.add(Problem(("channels", index, "slug"), f"slug {channel.slug!r} is used twice"))
            slugs.add(channel.slug)
        channels.append(channel)
    problems.raise_if_any(label)
    assert document is not None
    plan = Plan(
        workspace=document.workspace,
        knowledge_bases=knowledge_bases,
        sources=sources,
        agents=agents,
        channels=channels,
        secret_references=references,
    )
    return plan, lines, notes
