"""The agent spec: what an agent declaration may say, and every problem with one at once.

An agent is declared as an :class:`AgentSpecInput` (from the admin API, the dashboard or an
``apply`` file). Validation happens in two steps, so a caller can report every problem of a
document at once:

1. :func:`validate_agent_spec` — the shape (pydantic) and what the loaded plugins know:
   each tool's ``type`` is a registered tool type and its ``config`` passes that type's
   ``config_schema``; tool names are unique OpenAI function names.
2. :func:`agent_reference_problems` — what the workspace knows: the model integration is an
   ``openai`` integration of the workspace, the knowledge bases exist.

Problems carry a location (``("tools", 1, "config", "url")``) rather than a formatted
string, so the ``apply`` command can point at the line of a YAML file; :class:`SpecError`
is the :class:`~callable_agents.core.errors.InvalidInput` that carries them. Storing a
validated spec is :mod:`callable_agents.core.store.agents`' job.
"""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from callable_agents.core.errors import InvalidInput

if TYPE_CHECKING:
    from callable_agents.core.plugins import Plugins
    from callable_agents.core.runtime import Runtime

__all__ = [
    "AgentSpecInput",
    "BusinessInfo",
    "ModelSettingsInput",
    "Problem",
    "SpecError",
    "ToolInput",
    "agent_reference_problems",
    "format_loc",
    "parse_agent_spec",
    "problems_from_validation_error",
    "summarise",
    "validate_agent_spec",
]

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
TOOL_NAME_PATTERN = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")  # OpenAI's function-name rule
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
OFFLINE_MODEL = "offline"
DEFAULT_MAX_TOOL_ROUNDS = 4
MAX_PROBLEMS_SHOWN = 5


# --------------------------------------------------------------------------- problems

Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input: where (a path of keys and list indexes) and what."""

    loc: Loc
    message: str

    def __str__(self) -> str:
        where = format_loc(self.loc)
        return f"{where}: {self.message}" if where else self.message

    def within(self, *prefix: str | int) -> Problem:
        return Problem(tuple(prefix) + self.loc, self.message)


class SpecError(InvalidInput):
    """Invalid input with every problem found, each with its location."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        first = format_loc(self.problems[0].loc) if self.problems else ""
        super().__init__(summarise(str(problem) for problem in self.problems), field=first or None)


def summarise(messages: Iterable[str], max_shown: int = MAX_PROBLEMS_SHOWN) -> str:
    """The first few problems on one line (a CLI prints errors as one line)."""
    shown = list(messages)
    text = "; ".join(shown[:max_shown])
    if len(shown) > max_shown:
        text += f" (and {len(shown) - max_shown} more problems)"
    return text


def format_loc(loc: Loc) -> str:
    """``("agents", 0, "tools", 1, "name")`` → ``agents[0].tools[1].name``."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


def problems_from_validation_error(
    exc: ValidationError, model: type[BaseModel] | None = None, prefix: Loc = ()
) -> list[Problem]:
    """Readable problems from a pydantic error. Input values are never repeated (they may be secret)."""
    problems = []
    for error in exc.errors(include_input=False, include_url=False):
        loc: Loc = tuple(error["loc"])
        kind = error["type"]
        ctx = error.get("ctx") or {}
        if kind == "missing":
            message = "required"
        elif kind == "extra_forbidden":
            known = _field_names_at(model, loc[:-1]) if model is not None else None
            message = "unknown field" + (f" (expected one of: {', '.join(known)})" if known else "")
        elif kind == "value_error":
            message = str(ctx.get("error", error["msg"]))
            loc, message = _relocate(model, loc, message)
        elif kind == "union_tag_invalid":
            loc = loc + (str(ctx.get("discriminator", "kind")).strip("'"),)
            message = f"expected one of {ctx.get('expected_tags', '')}"
        elif kind == "union_tag_not_found":
            loc = loc + (str(ctx.get("discriminator", "kind")).strip("'"),)
            message = "required"
        else:
            message = _expected(error["msg"])
        problems.append(Problem(prefix + loc, message))
    return problems


_FIELD_FIRST = re.compile(r"^([A-Za-z_]\w*(?:\.\w+)*): (.+)$", re.DOTALL)


def _relocate(model: type[BaseModel] | None, loc: Loc, message: str) -> tuple[Loc, str]:
    """A model-level check that names its field first ("url: ...") is moved onto that field,
    so the problem points at the field's line rather than the object's."""
    match = _FIELD_FIRST.match(message)
    if model is None or match is None:
        return loc, message
    path = match.group(1).split(".")
    known = _field_names_at(model, loc)
    if not known or path[0] not in known:
        return loc, message
    return loc + tuple(path), match.group(2)


def _expected(message: str) -> str:
    for lead in ("Input should be ", "String should ", "List should ", "Dictionary should "):
        if message.startswith(lead):
            rest = message[len(lead) :]
            return "expected " + rest.removeprefix("have ")
    return message


def _field_names_at(model: type[BaseModel], loc: Loc) -> list[str] | None:
    """The fields a nested model accepts at ``loc`` (best effort, for "unknown field" hints)."""
    annotation: Any = model
    for part in loc:
        annotation = _unwrap(annotation)
        if isinstance(part, int):
            args = typing.get_args(annotation)
            if not args:
                return None
            annotation = args[0]
        elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
            field = annotation.model_fields.get(part)
            if field is None:
                return None
            annotation = field.annotation
        else:
            return None
    annotation = _unwrap(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return list(annotation.model_fields)
    return None


def _unwrap(annotation: Any) -> Any:
    """``Annotated[X, ...]`` → X; ``X | None`` → X."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (Union, types.UnionType):
            options = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
            if len(options) != 1:
                return annotation
            annotation = options[0]
        else:
            return annotation


# --------------------------------------------------------------------------- field types


def _check_name(value: str) -> str:
    if not NAME_PATTERN.match(value):
        raise ValueError("expected 1-100 letters, digits, '-', '_' or '.', starting with a letter or digit")
    return value


def _check_tool_name(value: str) -> str:
    if not TOOL_NAME_PATTERN.match(value):
        raise ValueError("expected 1-64 letters, digits, '_' or '-' (the model calls the tool by this name)")
    return value


def _check_line(value: str) -> str:
    if _CONTROL_CHARS.search(value) or "\n" in value:
        raise ValueError("expected one line of printable text")
    return value.strip()


def _check_text(value: str) -> str:
    if _CONTROL_CHARS.search(value):
        raise ValueError("expected printable text (no control characters)")
    return value


def _check_email(value: str) -> str:
    value = value.strip()
    if value and not _EMAIL.match(value):
        raise ValueError("expected an email address like hello@example.com")
    return value


def _check_website(value: str) -> str:
    value = value.strip()
    if value and not re.match(r"^https?://[^\s/]+\.[^\s]+$", value):
        raise ValueError("expected an http:// or https:// URL like https://example.com")
    return value


def _check_phone(value: str) -> str:
    value = value.strip()
    if value and (not re.search(r"\d", value) or not re.match(r"^[0-9+()./ x-]+$", value.lower())):
        raise ValueError("expected a phone number like +1 555 010 0123")
    return value


def _check_model_name(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    if not value or value.lower() == OFFLINE_MODEL:
        return None  # no model: the agent runs in offline mode
    if len(value) > 200 or _CONTROL_CHARS.search(value) or " " in value:
        raise ValueError("expected a model name like 'gpt-4o-mini' (or nothing / 'offline' for offline mode)")
    return value


Name = Annotated[str, AfterValidator(_check_name)]
ToolName = Annotated[str, AfterValidator(_check_tool_name)]
Line = Annotated[str, Field(max_length=500), AfterValidator(_check_line)]
Paragraph = Annotated[str, Field(max_length=4000), AfterValidator(_check_text)]
ModelName = Annotated[str | None, AfterValidator(_check_model_name)]


class _Input(BaseModel):
    """Unknown keys are errors: a typo must not pass silently."""

    model_config = ConfigDict(extra="forbid")


class BusinessInfo(_Input):
    """What the agent knows about the business, given to the model with every turn."""

    name: Line = Field(default="", description="The business's name as customers know it.")
    description: Paragraph = Field(default="", description="What the business does, in a few sentences.")
    hours: Paragraph = Field(default="", description="Opening hours, e.g. 'Mon-Fri 7:00-18:00; Sun closed'.")
    address: Paragraph = ""
    phone: Annotated[str, Field(max_length=50), AfterValidator(_check_phone)] = ""
    email: Annotated[str, Field(max_length=320), AfterValidator(_check_email)] = ""
    website: Annotated[str, Field(max_length=500), AfterValidator(_check_website)] = ""
    facts: list[Paragraph] = Field(default_factory=list, max_length=100, description="Other short facts.")


class ModelSettingsInput(_Input):
    """Which chat model answers. No ``model`` (or ``"offline"``) means offline mode.

    The names match what :func:`callable_agents.core.llm.validate_model_settings` accepts, plus
    ``max_tool_rounds``, which the graph reads (see :attr:`~callable_agents.core.store.agents.AgentSnapshot.max_tool_rounds`).
    """

    integration: Annotated[str, AfterValidator(_check_name)] | None = Field(
        default=None, description="An openai integration of the workspace (default: OPENAI_API_KEY)."
    )
    model: ModelName = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    fallback_model: ModelName = None
    max_tokens: int | None = Field(default=None, ge=1)
    timeout: float | None = Field(default=None, gt=0, le=600, description="Seconds per model call.")
    max_retries: int | None = Field(default=None, ge=0, le=10)
    max_tool_rounds: int = Field(default=DEFAULT_MAX_TOOL_ROUNDS, ge=1, le=10)
    accepts_images: bool | None = Field(
        default=None, description="Send customers' images to the model as image input (default: no)."
    )

    @model_validator(mode="after")
    def _needs_a_model(self) -> ModelSettingsInput:
        if self.model is None and self.integration is not None:
            raise ValueError("model: expected a model name (e.g. 'gpt-4o-mini') when an integration is set")
        if self.model is None and self.fallback_model is not None:
            raise ValueError("fallback_model: needs a primary model; set model first")
        if self.fallback_model is not None and self.fallback_model == self.model:
            raise ValueError("fallback_model: expected a model other than model")
        return self

    def stored(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)


class ToolInput(_Input):
    """One tool given to the agent: a registered tool type, the name the model calls it by, its config."""

    type: Annotated[str, Field(min_length=1, max_length=100)]
    name: ToolName
    config: dict[str, Any] = Field(default_factory=dict)


class AgentSpecInput(_Input):
    """An agent as declared by a person: the input of :func:`~callable_agents.core.store.agents.create_or_update_agent`."""

    name: Name
    kind: Literal["chat", "voice"] = "chat"
    system_prompt: Annotated[str, Field(max_length=20_000), AfterValidator(_check_text)] = ""
    business_info: BusinessInfo = Field(default_factory=BusinessInfo)
    model_settings: ModelSettingsInput = Field(default_factory=ModelSettingsInput)
    knowledge_bases: list[Annotated[str, Field(min_length=1, max_length=100)]] = Field(default_factory=list)
    tools: list[ToolInput] = Field(default_factory=list, max_length=32)
    greeting: Annotated[str, Field(max_length=2000), AfterValidator(_check_text)] = ""
    fallback_message: Annotated[str, Field(max_length=2000), AfterValidator(_check_text)] = ""


def parse_agent_spec(data: Mapping[str, Any] | AgentSpecInput) -> AgentSpecInput:
    """Check the shape of an agent declaration; :class:`SpecError` names each field at fault."""
    if isinstance(data, AgentSpecInput):
        return data
    if not isinstance(data, Mapping):
        raise SpecError([Problem((), f"expected an object with the agent's fields, got {type(data).__name__}")])
    try:
        return AgentSpecInput.model_validate(dict(data))
    except ValidationError as exc:
        raise SpecError(problems_from_validation_error(exc, AgentSpecInput)) from None


def _plugins_of(runtime_or_plugins: Runtime | Plugins) -> Plugins:
    from callable_agents.core.runtime import Runtime  # the module-level name is for type checking only

    return runtime_or_plugins.plugins if isinstance(runtime_or_plugins, Runtime) else runtime_or_plugins


def validate_agent_spec(data: Mapping[str, Any] | AgentSpecInput, runtime_or_plugins: Runtime | Plugins) -> AgentSpecInput:
    """The spec with every tool config validated by its tool type (and normalised: defaults filled in).

    Raises :class:`SpecError` listing every problem at once: the shape, unknown tool types,
    configs their type refuses, duplicate tool or knowledge base names.
    """
    problems: list[Problem] = []
    spec: AgentSpecInput | None = None
    try:
        spec = parse_agent_spec(data)
    except SpecError as exc:
        problems.extend(exc.problems)
    raw_tools: Any = [tool.model_dump() for tool in spec.tools] if spec else (data or {}).get("tools")  # type: ignore[union-attr]
    configs = _check_tools(raw_tools if isinstance(raw_tools, list) else [], _plugins_of(runtime_or_plugins), problems)
    kb_names = spec.knowledge_bases if spec else []
    seen_kbs: set[str] = set()
    for index, kb_name in enumerate(kb_names):
        if kb_name in seen_kbs:
            problems.append(Problem(("knowledge_bases", index), f"knowledge base {kb_name!r} is listed twice"))
        seen_kbs.add(kb_name)
    if problems or spec is None:
        unique = list(dict.fromkeys(problems))
        unique.sort(key=lambda problem: tuple(str(part).zfill(6) for part in problem.loc))
        raise SpecError(unique)
    tools = [tool.model_copy(update={"config": config}) for tool, config in zip(spec.tools, configs, strict=True)]
    return spec.model_copy(update={"tools": tools})


def _check_tools(raw_tools: list[Any], plugins: Plugins, problems: list[Problem]) -> list[dict[str, Any]]:
    """Each tool's config validated by its registered type; problems are appended as found."""
    configs: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    for index, tool in enumerate(raw_tools):
        if not isinstance(tool, Mapping):
            continue
        name, type_name, config = tool.get("name"), tool.get("type"), tool.get("config", {})
        if isinstance(name, str):
            if name in seen:
                problems.append(Problem(("tools", index, "name"), f"duplicate tool name {name!r} (also tools[{seen[name]}])"))
            seen.setdefault(name, index)
        if not isinstance(type_name, str):
            continue
        if type_name not in plugins.tools:
            known = ", ".join(sorted(plugins.tools.types)) or "none"
            problems.append(Problem(("tools", index, "type"), f"unknown tool type {type_name!r}; loaded: {known}"))
            continue
        if not isinstance(config, Mapping):
            continue  # the shape check reports it
        schema = plugins.tools.get(type_name).config_schema
        try:
            configs.append(schema.model_validate(dict(config)).model_dump(mode="json"))
        except ValidationError as exc:
            problems.extend(problems_from_validation_error(exc, schema, ("tools", index, "config")))
    return configs


def agent_reference_problems(
    spec: AgentSpecInput,
    *,
    integrations: Mapping[str, str],
    knowledge_bases: Iterable[str],
) -> list[Problem]:
    """What in ``spec`` refers to things the workspace lacks.

    ``integrations`` maps integration names to providers; ``knowledge_bases`` are the names
    that exist (or will, in the same apply).
    """
    problems = []
    integration = spec.model_settings.integration
    if integration is not None:
        provider = integrations.get(integration)
        if provider is None:
            problems.append(
                Problem(
                    ("model_settings", "integration"),
                    f"no integration named {integration!r} in this workspace; connect one with "
                    f"`callable integrations connect openai --name {integration}` and reference it by name",
                )
            )
        elif provider != "openai":
            problems.append(
                Problem(
                    ("model_settings", "integration"),
                    f"integration {integration!r} is a {provider} integration; expected an openai one",
                )
            )
    known = set(knowledge_bases)
    for index, kb_name in enumerate(spec.knowledge_bases):
        if kb_name not in known:
            problems.append(
                Problem(
                    ("knowledge_bases", index),
                    f"no knowledge base named {kb_name!r} in this workspace (create it first, or declare it "
                    "under knowledge_bases in an apply file)",
                )
            )
    return problems
