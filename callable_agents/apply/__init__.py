"""Agents as code: apply a workspace declared in one YAML file, idempotently.

A file declares one workspace and, in it, knowledge bases with their sources, agents (with
their tools and knowledge bases) and channels::

    version: 1
    workspace: {slug: bakery, name: "Bella's Bakery"}
    knowledge_bases:
      - name: bakery
        sources:
          - {kind: text, title: Opening hours, text: "Mon-Fri 7-18 ..."}
          - {kind: url, url: "https://example.com/menu", options: {max_pages: 20}}
          - {kind: file, path: docs/menu.pdf}        # relative to this file
    agents:
      - name: assistant
        system_prompt: ...
        knowledge_bases: [bakery]
        tools:
          - {type: lookup, name: order_status, config: {url: "${CALLABLE_BASE_URL}/demo-api/orders/{order_id}"}}
    channels:
      - {name: website, kind: widget, agent: assistant, config: {...}}

**Secrets are never written in the file.** A key named like a secret (``api_key``,
``auth_token``, ``password``, ``secret``, ``Authorization``, ...) with a literal value is
refused: connect an integration (``callable integrations connect ...``) and reference it by
name (``model_settings.integration``, a channel's ``integration``).

**Variables.** ``${CALLABLE_BASE_URL}`` in any string becomes the server's base URL
(``CALLABLE_PUBLIC_BASE_URL``, or ``http://HOST:PORT``), so a tool can call this server.
Other ``${UPPER_CASE}`` names are refused (environment variables are not read: they would
carry secrets into stored configs); text in ``${lower_case}`` is left as it is.

**How it runs.** The whole document is checked first — YAML syntax, every field, tool and
channel configs against their plugin schemas, source options against their loaders, file
sources read — then references (integrations, knowledge bases, agents, public slugs)
against the database. Any problem stops the apply before anything is written, with
``FILE:LINE: path.to.field: what was expected``. Then one transaction writes only what
differs from what is stored (an unchanged object keeps its ``updated_at``), and new or
changed sources are indexed after it commits. Apply never deletes: objects not in the file
are left as they are.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import undefer

from callable_agents.core.store.agents import (
    NAME_PATTERN,
    AgentSpecInput,
    Loc,
    Problem,
    SpecError,
    agent_reference_problems,
    create_or_update_agent,
    problems_from_validation_error,
    summarise,
    validate_agent_spec,
)
from callable_agents.core.store.channels import (
    ChannelSpecInput,
    channel_reference_problems,
    create_or_update_channel,
    validate_channel_spec,
)
from callable_agents.core.errors import CallableError, InvalidInput
from callable_agents.core.knowledge.embeddings import check_model_spec
from callable_agents.core.knowledge.store import MIN_REFRESH_INTERVAL_SECONDS, add_source, create_knowledge_base
from callable_agents.core.contracts.loaders import SourceDraft
from callable_agents.core.models import Agent, Channel, Integration, KnowledgeBase, Source, Workspace
from callable_agents.core.runtime import Runtime
from callable_agents.core.store.workspaces import SLUG_PATTERN, ensure_workspace

__all__ = ["ApplyError", "ApplyReport", "ReportItem", "apply_document", "apply_file", "BASE_URL_VARIABLE"]

BASE_URL_VARIABLE = "CALLABLE_BASE_URL"
MAX_VALUES = 200_000
MAX_DEPTH = 50
_VARIABLE = re.compile(r"\$\{([A-Z][A-Z0-9_]*)\}")
# Keys whose literal value would be a secret written into the file.
_SECRET_KEY = re.compile(
    r"(^|[_-])(auth[_-]?token|api[_-]?key|apikey|secret|secret[_-]?key|client[_-]?secret|password|passwd|"
    r"access[_-]?token|refresh[_-]?token|private[_-]?key|token|bearer|authorization|credentials?)$",
    re.IGNORECASE,
)
# A value made of secret references (``{{secret:INTEGRATION.FIELD}}``, read from the vault at
# call time) and at most an auth scheme is not a secret written into the file.
_SECRET_REFERENCE = re.compile(r"\{\{secret:[^{}]+\}\}")
_AUTH_SCHEME = re.compile(r"^(bearer|basic|token|bot)?$", re.IGNORECASE)
# Values that are secrets whatever their key is called (OpenAI-style keys).
_SECRET_VALUE = re.compile(r"^(sk|rk)-[A-Za-z0-9_-]{16,}$")
_SECRET_ADVICE = (
    "secrets are never written into an apply file: connect an integration "
    "(`callable integrations connect PROVIDER --name NAME`) and reference it by name"
)


# --------------------------------------------------------------------------- report


Action = Literal["created", "updated", "unchanged"]


@dataclass(frozen=True)
class ReportItem:
    action: Action
    kind: str  # workspace | knowledge base | source | agent | channel
    name: str
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.action} {self.kind} {self.name}" + (f" ({self.detail})" if self.detail else "")


@dataclass
class ApplyReport:
    """What an apply did (or, in a dry run, would do), one item per declared object."""

    workspace: str
    dry_run: bool = False
    items: list[ReportItem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    failed_sources: list[str] = field(default_factory=list)  # "kb/source: reason", after indexing

    @property
    def changed(self) -> bool:
        return any(item.action != "unchanged" for item in self.items)

    def lines(self) -> list[str]:
        lines = [str(item) for item in self.items]
        lines.extend(f"note: {note}" for note in self.notes)
        lines.extend(f"failed source {failure}" for failure in self.failed_sources)
        if self.dry_run:
            lines.append("dry run: nothing was written")
        return lines


class ApplyError(InvalidInput):
    """An invalid apply file: every problem with its line, field path and what was expected."""

    def __init__(self, label: str, problems: list[tuple[int | None, Problem]]) -> None:
        self.label = label
        self.problems = problems
        super().__init__(summarise(self.format(line, problem) for line, problem in problems))

    def format(self, line: int | None, problem: Problem) -> str:
        return f"{self.label}:{line}: {problem}" if line else f"{self.label}: {problem}"


# --------------------------------------------------------------------------- document schema


def _check_slug(value: str) -> str:
    if not SLUG_PATTERN.match(value):
        raise ValueError("expected lowercase letters, digits and dashes (1-63 characters), e.g. 'bakery'")
    return value


def _check_name(value: str) -> str:
    if not NAME_PATTERN.match(value):
        raise ValueError("expected 1-100 letters, digits, '-', '_' or '.', starting with a letter or digit")
    return value


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


class WorkspaceInput(_Input):
    slug: Annotated[str, AfterValidator(_check_slug)]
    name: Annotated[str, Field(min_length=1, max_length=200)] | None = None


class SourceInput(_Input):
    """One knowledge source. ``text`` sources are identified by title, ``url`` ones by URL,
    ``file`` ones by path; plugin-defined kinds by ``location``."""

    kind: Annotated[str, Field(min_length=1, max_length=20)]
    title: Annotated[str, Field(max_length=500)] = ""
    text: str | None = None
    url: str | None = None
    path: str | None = None
    location: str | None = None
    options: dict[str, Any] = Field(default_factory=dict)
    refresh_interval_seconds: int | None = Field(default=None, ge=MIN_REFRESH_INTERVAL_SECONDS)


class KnowledgeBaseInput(_Input):
    name: Annotated[str, AfterValidator(_check_name)]
    embedding_model: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    sources: list[dict[str, Any]] = Field(default_factory=list)  # each a SourceInput


class DocumentInput(_Input):
    """The file's top level. Items are checked one by one (so every problem is reported at
    once): knowledge bases as :class:`KnowledgeBaseInput`, agents as
    :class:`~callable_agents.core.store.agents.AgentSpecInput`, channels as
    :class:`~callable_agents.core.store.channels.ChannelSpecInput`."""

    version: Literal[1] = 1
    workspace: WorkspaceInput
    knowledge_bases: list[dict[str, Any]] = Field(default_factory=list)
    agents: list[dict[str, Any]] = Field(default_factory=list)
    channels: list[dict[str, Any]] = Field(default_factory=list)


@dataclass
class _SourcePlan:
    """A declared source in stored form."""

    loc: Loc
    kind: str
    identity: str  # title (text) or location
    location: str
    title: str
    options: dict[str, Any]
    content: bytes | None
    refresh_interval_seconds: int | None

    @property
    def label(self) -> str:
        return self.title if self.kind == "text" else self.location


# --------------------------------------------------------------------------- YAML with lines


class _Problems:
    """Problems collected while checking a document, each mapped to its line."""

    def __init__(self, lines: dict[Loc, int]) -> None:
        self.lines = lines
        self.found: list[tuple[int | None, Problem]] = []

    def add(self, problem: Problem, data: Any = None) -> None:
        loc = _clean_loc(data, problem.loc) if data is not None else problem.loc
        problem = Problem(loc, problem.message)
        self.found.append((self.line_of(loc), problem))

    def extend(self, problems: list[Problem], data: Any = None) -> None:
        for problem in problems:
            self.add(problem, data)

    def line_of(self, loc: Loc) -> int | None:
        for end in range(len(loc), -1, -1):
            line = self.lines.get(loc[:end])
            if line is not None:
                return line
        return None

    def raise_if_any(self, label: str) -> None:
        if self.found:
            self.found.sort(key=lambda pair: pair[0] or 0)
            raise ApplyError(label, self.found)


def _clean_loc(data: Any, loc: Loc) -> Loc:
    """Drop the parts pydantic adds that are not in the document (e.g. a union's tag)."""
    cleaned: list[str | int] = []
    current = data
    for index, part in enumerate(loc):
        if isinstance(current, list) and isinstance(part, int) and 0 <= part < len(current):
            current = current[part]
        elif isinstance(current, dict) and part in current:
            current = current[part]
        elif isinstance(current, dict) and index < len(loc) - 1 and isinstance(part, str) and not part.isidentifier():
            continue
        else:
            cleaned.extend(loc[index:])
            break
        cleaned.append(part)
    return tuple(cleaned)


def _unbuildable_scalar_line(node: Any) -> int | None:
    """The line of the first scalar PyYAML cannot build (an impossible date), if any."""
    if isinstance(node, yaml.ScalarNode):
        try:
            yaml.SafeLoader("").construct_object(node, deep=True)
        except ValueError:
            return int(node.start_mark.line) + 1
        return None
    children = node.value if isinstance(node, (yaml.SequenceNode, yaml.MappingNode)) else []
    for child in children:
        for part in child if isinstance(child, tuple) else (child,):
            line = _unbuildable_scalar_line(part)
            if line is not None:
                return line
    return None


def parse_yaml(text: str, label: str) -> tuple[Any, dict[Loc, int]]:
    """The document and the line of every key and list item (1-based), by location."""
    root = None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        reason = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        where = f"{label}:{mark.line + 1}" if mark is not None else label
        raise InvalidInput(f"{where}: invalid YAML: {reason}") from None
    except ValueError as exc:  # PyYAML builds dates while loading: `2025-02-30` raises here
        line = _unbuildable_scalar_line(root)
        where = f"{label}:{line}" if line else label
        raise InvalidInput(f"{where}: invalid value ({exc}); quote it if it is not meant as a date") from None
    lines: dict[Loc, int] = {}
    duplicates: list[tuple[int, Problem]] = []
    if root is not None:
        budget = [MAX_VALUES]
        _record_lines(root, (), lines, duplicates, depth=0, budget=budget)
        if budget[0] < 0:
            raise InvalidInput(f"{label}: the document has more than {MAX_VALUES} values (counting what aliases repeat)")
    if duplicates:
        raise ApplyError(label, [(line, problem) for line, problem in duplicates])
    return data, lines


def _record_lines(
    node: yaml.Node,
    loc: Loc,
    lines: dict[Loc, int],
    duplicates: list[tuple[int, Problem]],
    depth: int,
    budget: list[int],
) -> None:
    """Walk the node tree as the loaded data will be walked (aliases expanded), within a budget:
    a few nested aliases can otherwise stand for billions of values."""
    lines.setdefault(loc, node.start_mark.line + 1)
    budget[0] -= 1
    if depth > MAX_DEPTH or budget[0] < 0:
        return
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.value == "<<":
                continue
            key = key_node.value
            line = key_node.start_mark.line + 1
            if key in seen:
                duplicates.append((line, Problem(loc + (key,), "duplicate key (each key may appear once)")))
            seen.add(key)
            lines[loc + (key,)] = line
            _record_lines(value_node, loc + (key,), lines, duplicates, depth + 1, budget)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines[loc + (index,)] = item.start_mark.line + 1
            _record_lines(item, loc + (index,), lines, duplicates, depth + 1, budget)


def _walk(data: Any, loc: Loc = ()) -> Iterator[tuple[Loc, Any, Any]]:
    """Every (location, key, value) below ``data``; key is None for list items."""
    if isinstance(data, dict):
        for key, value in data.items():
            yield loc + (key,), key, value
            yield from _walk(value, loc + (key,))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            yield loc + (index,), None, value
            yield from _walk(value, loc + (index,))


def _substitute(data: Any, variables: Mapping[str, str], problems: _Problems, loc: Loc = ()) -> Any:
    """``${NAME}`` in strings replaced by its value; unknown upper-case names are problems."""
    if isinstance(data, str):

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in variables:
                known = ", ".join("${" + known + "}" for known in sorted(variables))
                problems.add(Problem(loc, f"unknown variable ${{{name}}}; supported: {known}"))
                return match.group(0)
            return variables[name]

        return _VARIABLE.sub(replace, data)
    if isinstance(data, dict):
        return {key: _substitute(value, variables, problems, loc + (key,)) for key, value in data.items()}
    if isinstance(data, list):
        return [_substitute(value, variables, problems, loc + (index,)) for index, value in enumerate(data)]
    return data


def _secret_problems(data: Any) -> list[Problem]:
    problems = []
    for loc, key, value in _walk(data):
        literal = isinstance(value, (str, int, float)) and not isinstance(value, bool) and str(value).strip() != ""
        if not literal:
            continue
        if isinstance(value, str) and _SECRET_REFERENCE.search(value):
            if _AUTH_SCHEME.match(_SECRET_REFERENCE.sub("", value).strip()):
                continue
        if isinstance(key, str) and _SECRET_KEY.search(key):
            problems.append(Problem(loc, f"looks like a secret written into the file; {_SECRET_ADVICE}"))
        elif isinstance(value, str) and _SECRET_VALUE.match(value.strip()):
            problems.append(Problem(loc, f"looks like an API key written into the file; {_SECRET_ADVICE}"))
    return problems


# --------------------------------------------------------------------------- checking


@dataclass
class _Plan:
    """A fully checked document, ready to write."""

    workspace: WorkspaceInput
    knowledge_bases: list[KnowledgeBaseInput]
    sources: dict[str, list[_SourcePlan]]  # by knowledge base name
    agents: list[AgentSpecInput]
    channels: list[ChannelSpecInput]


def _plan_sources(
    runtime: Runtime, kb: KnowledgeBaseInput, kb_loc: Loc, base_dir: Path | None, problems: _Problems
) -> list[_SourcePlan]:
    plans: list[_SourcePlan] = []
    seen: dict[tuple[str, str], int] = {}
    for index, raw in enumerate(kb.sources):
        loc = kb_loc + ("sources", index)
        try:
            source = SourceInput.model_validate(raw)
        except ValidationError as exc:
            problems.extend(problems_from_validation_error(exc, SourceInput, loc))
            continue
        plan = _plan_source(runtime, source, loc, base_dir, problems)
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
    runtime: Runtime, source: SourceInput, loc: Loc, base_dir: Path | None, problems: _Problems
) -> _SourcePlan | None:
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
        file_path = (base_dir / raw).resolve()
        if not file_path.is_file():
            problems.add(Problem(loc + ("path",), f"no file at {raw!r} (paths are relative to the YAML file)"))
            return None
        size = file_path.stat().st_size
        if size > runtime.settings.max_upload_bytes:
            problems.add(
                Problem(loc + ("path",), f"the file is {size} bytes; the limit is {runtime.settings.max_upload_bytes}")
            )
            return None
        content = file_path.read_bytes()
        location = identity = Path(raw).as_posix()
        title = title or file_path.name
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
            problems.add(_check_problem(loc, source.kind, str(exc)))
            return None
    if source.refresh_interval_seconds is not None and not loader.refreshable:
        problems.add(Problem(loc + ("refresh_interval_seconds",), f"{source.kind} sources don't change by themselves"))
        return None
    return _SourcePlan(
        loc=loc,
        kind=source.kind,
        identity=identity,
        location=location,
        title=title,
        options=options_model.model_dump(mode="json", exclude_defaults=True),
        content=content,
        refresh_interval_seconds=source.refresh_interval_seconds,
    )


def _check_problem(loc: Loc, kind: str, message: str) -> Problem:
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
    workspace: str | None = None,
    skip_unregistered_channels: bool = False,
) -> tuple[_Plan, dict[Loc, int], list[str]]:
    """Everything that can be checked without the database; raises :class:`ApplyError`.

    Returns the plan, the line of every location in the file and notes for the report.
    """
    notes: list[str] = []
    data, lines = parse_yaml(text, label)
    problems = _Problems(lines)
    if not isinstance(data, dict):
        problems.add(Problem((), "expected a mapping with workspace, knowledge_bases, agents and channels"))
        problems.raise_if_any(label)
    if workspace is not None:
        declared = data.get("workspace")
        data["workspace"] = {**(declared if isinstance(declared, dict) else {}), "slug": workspace}
    data = _substitute(data, {BASE_URL_VARIABLE: runtime.settings.base_url}, problems)
    problems.extend(_secret_problems(data))
    problems.raise_if_any(label)
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
    sources: dict[str, list[_SourcePlan]] = {}
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
        sources[kb.name] = _plan_sources(runtime, kb, loc, base_dir, problems)

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
    plan = _Plan(
        workspace=document.workspace,
        knowledge_bases=knowledge_bases,
        sources=sources,
        agents=agents,
        channels=channels,
    )
    return plan, lines, notes


# --------------------------------------------------------------------------- writing


async def _reference_problems(
    session: AsyncSession, workspace_id: str | None, plan: _Plan, problems: _Problems
) -> None:
    integrations: dict[str, str] = {}
    kb_names: set[str] = set()
    agent_kinds: dict[str, str] = {}
    if workspace_id is not None:
        rows = await session.execute(
            select(Integration.name, Integration.provider).where(Integration.workspace_id == workspace_id)
        )
        integrations = {name: provider for name, provider in rows.all()}
        kb_names = set((await session.scalars(select(KnowledgeBase.name).where(KnowledgeBase.workspace_id == workspace_id))).all())
        rows = await session.execute(select(Agent.name, Agent.kind).where(Agent.workspace_id == workspace_id))
        agent_kinds = {name: kind for name, kind in rows.all()}
    kb_names |= set(plan.sources)
    agent_kinds.update({agent.name: agent.kind for agent in plan.agents})
    for index, agent in enumerate(plan.agents):
        found = agent_reference_problems(agent, integrations=integrations, knowledge_bases=kb_names)
        problems.extend([problem.within("agents", index) for problem in found])
    for index, channel in enumerate(plan.channels):
        found = channel_reference_problems(channel, agent_kinds=agent_kinds, integrations=integrations)
        problems.extend([problem.within("channels", index) for problem in found])
        if channel.slug is not None:
            holder = (
                await session.execute(
                    select(Channel.workspace_id, Channel.name).where(Channel.slug == channel.slug)
                )
            ).first()
            if holder is not None and (holder[0] != workspace_id or holder[1] != channel.name):
                problems.add(
                    Problem(("channels", index, "slug"), f"{channel.slug!r} is already used by another channel; pick another slug")
                )


async def _apply_knowledge_base(
    session: AsyncSession,
    runtime: Runtime,
    workspace_id: str,
    kb: KnowledgeBaseInput,
    plans: list[_SourcePlan],
    report: ApplyReport,
    to_ingest: list[tuple[str, str]],
) -> None:
    existing = await session.scalar(
        select(KnowledgeBase).where(KnowledgeBase.workspace_id == workspace_id, KnowledgeBase.name == kb.name)
    )
    if existing is None:
        options = {"embedding_model": kb.embedding_model} if kb.embedding_model else {}
        knowledge_base = await create_knowledge_base(session, workspace_id, kb.name, runtime=runtime, **options)
        report.items.append(ReportItem("created", "knowledge base", kb.name))
    else:
        knowledge_base = existing
        if kb.embedding_model and kb.embedding_model != existing.embedding_model:
            raise SpecError(
                [
                    Problem(
                        ("embedding_model",),
                        f"knowledge base {kb.name!r} uses {existing.embedding_model!r}; apply does not re-embed a "
                        "knowledge base (change its model with the kb command)",
                    )
                ]
            )
        report.items.append(ReportItem("unchanged", "knowledge base", kb.name))
    stored = (
        await session.scalars(
            select(Source)
            .where(Source.workspace_id == workspace_id, Source.knowledge_base_id == knowledge_base.id)
            .options(undefer(Source.content))
            .order_by(Source.created_at, Source.id)
        )
    ).all()
    by_identity: dict[tuple[str, str], Source] = {}
    source: Source | None
    for source in stored:
        identity = source.title if source.kind == "text" else source.location
        by_identity.setdefault((source.kind, identity), source)
    for plan in plans:
        name = f"{kb.name}/{plan.label}"
        source = by_identity.get((plan.kind, plan.identity))
        try:
            if source is None:
                created = await add_source(
                    session,
                    workspace_id,
                    knowledge_base.id,
                    runtime=runtime,
                    kind=plan.kind,
                    location=plan.location,
                    title=plan.title,
                    content=plan.content,
                    options=plan.options,
                    refresh_interval_seconds=plan.refresh_interval_seconds,
                )
                report.items.append(ReportItem("created", "source", name))
                to_ingest.append((created.id, name))
                continue
        except CallableError as exc:
            raise SpecError([_check_problem(plan.loc[2:], plan.kind, str(exc))]) from None
        differences = _source_differences(source, plan)
        if differences:
            source.title = plan.title or source.title
            source.options = plan.options
            source.content = plan.content
            source.refresh_interval_seconds = plan.refresh_interval_seconds
            source.next_refresh_at = None
            if source.status != "indexing":
                source.status = "pending"
            await session.flush()
            report.items.append(ReportItem("updated", "source", name, ", ".join(differences)))
            to_ingest.append((source.id, name))
        elif source.status == "pending":
            report.items.append(ReportItem("unchanged", "source", name, "not indexed yet: indexing now"))
            to_ingest.append((source.id, name))
        elif source.status == "failed":
            report.items.append(ReportItem("unchanged", "source", name, f"failed: {source.error}"))
        else:
            report.items.append(ReportItem("unchanged", "source", name))


def _source_differences(source: Source, plan: _SourcePlan) -> list[str]:
    differences = []
    if plan.title and source.title != plan.title:
        differences.append("title")
    if (source.options or {}) != plan.options:
        differences.append("options")
    if plan.content is not None and source.content != plan.content:
        differences.append("content")
    if source.refresh_interval_seconds != plan.refresh_interval_seconds:
        differences.append("refresh_interval_seconds")
    return differences


async def _write(
    session: AsyncSession, runtime: Runtime, plan: _Plan, report: ApplyReport, problems: _Problems
) -> list[tuple[str, str]]:
    """Check references, then write what differs. Returns the sources to index, as (id, name)."""
    declared = plan.workspace
    workspace = await session.scalar(select(Workspace).where(Workspace.slug == declared.slug))
    await _reference_problems(session, workspace.id if workspace else None, plan, problems)
    if problems.found:
        return []
    if workspace is None:
        workspace = await ensure_workspace(session, runtime.vault, declared.name or declared.slug, declared.slug)
        report.items.append(ReportItem("created", "workspace", workspace.slug))
    elif declared.name and workspace.name != declared.name:
        workspace.name = declared.name
        await session.flush()
        report.items.append(ReportItem("updated", "workspace", workspace.slug, "name"))
    else:
        report.items.append(ReportItem("unchanged", "workspace", workspace.slug))

    to_ingest: list[tuple[str, str]] = []
    for index, kb in enumerate(plan.knowledge_bases):
        try:
            await _apply_knowledge_base(session, runtime, workspace.id, kb, plan.sources[kb.name], report, to_ingest)
        except SpecError as exc:
            problems.extend([problem.within("knowledge_bases", index) for problem in exc.problems])
            return []
        except CallableError as exc:
            problems.add(Problem(("knowledge_bases", index), str(exc)))
            return []
    for index, agent in enumerate(plan.agents):
        existed = await session.scalar(select(Agent.id).where(Agent.workspace_id == workspace.id, Agent.name == agent.name))
        try:
            _agent, changed = await create_or_update_agent(session, runtime, workspace.id, agent)
        except SpecError as exc:
            problems.extend([problem.within("agents", index) for problem in exc.problems])
            return []
        except CallableError as exc:
            problems.add(Problem(("agents", index), str(exc)))
            return []
        report.items.append(ReportItem(_action(changed, existed is not None), "agent", agent.name))
    for index, channel in enumerate(plan.channels):
        existed = await session.scalar(
            select(Channel.id).where(Channel.workspace_id == workspace.id, Channel.name == channel.name)
        )
        try:
            _row, changed = await create_or_update_channel(
                session,
                runtime,
                workspace.id,
                name=channel.name,
                kind=channel.kind,
                agent=channel.agent,
                integration=channel.integration,
                slug=channel.slug,
                config=channel.config,
                enabled=channel.enabled,
            )
        except SpecError as exc:
            problems.extend([problem.within("channels", index) for problem in exc.problems])
            return []
        except CallableError as exc:
            problems.add(Problem(("channels", index), str(exc)))
            return []
        report.items.append(ReportItem(_action(changed, existed is not None), "channel", channel.name))
    return to_ingest


def _action(changed: bool, existed: bool) -> Action:
    if not changed:
        return "unchanged"
    return "updated" if existed else "created"


async def apply_document(
    runtime: Runtime,
    text: str,
    base_dir: Path | None,
    *,
    label: str = "<document>",
    dry_run: bool = False,
    workspace: str | None = None,
    ingest: bool = True,
    skip_unregistered_channels: bool = False,
) -> ApplyReport:
    """Apply a YAML document (see the module docstring); ``base_dir`` resolves file sources.

    ``workspace`` overrides the document's workspace slug. With ``dry_run`` everything is
    checked and the report says what would change, but the transaction is rolled back.
    ``ingest=False`` leaves new and changed sources pending (``callable kb`` indexes them).
    ``skip_unregistered_channels`` leaves out, with a note, channels whose type no loaded
    plugin provides (for the packaged demo; a user's file with an unknown type is an error).
    Raises :class:`ApplyError` (an :class:`InvalidInput`) naming line and field.
    """
    # Off the event loop: file sources are read from disk here.
    plan, lines, notes = await asyncio.to_thread(
        check_document,
        runtime,
        text,
        label=label,
        base_dir=base_dir,
        workspace=workspace,
        skip_unregistered_channels=skip_unregistered_channels,
    )
    report = ApplyReport(workspace=plan.workspace.slug, dry_run=dry_run, notes=notes)
    problems = _Problems(lines)
    async with runtime.db.sessions() as session:
        transaction = await session.begin()
        await runtime.db.mark_write(session)
        try:
            to_ingest = await _write(session, runtime, plan, report, problems)
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
            indexed = await ingest_source(runtime, workspace_row_id, source_id)
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
    runtime: Runtime, path: str | Path, *, dry_run: bool = False, workspace: str | None = None, ingest: bool = True
) -> ApplyReport:
    """Apply the YAML file at ``path`` (file sources are read relative to its folder)."""
    file_path = Path(path)
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
        dry_run=dry_run,
        workspace=workspace,
        ingest=ingest,
    )

