"""The agent builder's form: a stored agent as form values, and a submitted form as an agent spec.

Field names are the spec's own locations joined by dots (``system_prompt``,
``business_info.hours``, ``model_settings.temperature``, ``tools.2.config.url``), so a
:class:`~callable_agents.core.store.agent_spec.SpecError` from the service layer lands beside
the control it names. Each tool's settings are generated from its type's config schema
(:mod:`.schema_forms`): a tool type from any plugin gets its form with no code here.

Tools are numbered in the form by a stable index (a removed tool leaves a gap); the spec's
list positions are mapped back to those indexes when problems come back. Secret references
(``{{secret:INTEGRATION.FIELD}}``) and literal secrets are checked exactly as ``apply``
checks them (:mod:`callable_agents.apply.values`, :func:`callable_agents.apply.write.secret_reference_problems`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from callable_agents.core.plugins import Plugins
from callable_agents.core.store.agent_spec import Problem, SpecError
from callable_agents.dashboard.forms import Form
from callable_agents.dashboard.schema_forms import FieldSpec, data_from_form, fields_of, form_values

# (field, label, help, textarea) of the business info the builder edits
BUSINESS_FIELDS: tuple[tuple[str, str, str, bool], ...] = (
    ("name", "Business name", "As customers know it.", False),
    ("description", "Description", "What the business does, in a few sentences.", True),
    ("hours", "Opening hours", "e.g. Mon-Fri 7:00-18:00; Sun closed.", True),
    ("address", "Address", "", True),
    ("phone", "Phone", "e.g. +1 555 010 0123.", False),
    ("email", "E-mail", "e.g. hello@example.com.", False),
    ("website", "Website", "An http:// or https:// link.", False),
)
SERVER_KEY = "@server"  # the model integration choice "the server's OPENAI_API_KEY"
_TOOL_KEY = re.compile(r"^tools\.(\d{1,3})\.type$")


@dataclass(frozen=True)
class ToolForm:
    """One tool's part of the builder: its form index, type and generated settings controls."""

    index: int
    type: str
    description: str
    known: bool  # the type is registered by a loaded plugin
    specs: list[FieldSpec]

    @property
    def prefix(self) -> str:
        return f"tools.{self.index}."


def tool_specs(plugins: Plugins, type_name: str, index: int) -> tuple[bool, str, list[FieldSpec]]:
    if type_name not in plugins.tools:
        return False, "", []
    tool_type = plugins.tools.get(type_name)
    return True, tool_type.description, fields_of(tool_type.config_schema, prefix=f"tools.{index}.config.")


def tool_form(plugins: Plugins, type_name: str, index: int) -> ToolForm:
    known, description, specs = tool_specs(plugins, type_name, index)
    return ToolForm(index=index, type=type_name, description=description, known=known, specs=specs)


def tool_indexes(form: Form) -> list[int]:
    """The form indexes of the tools in a submitted form, in order."""
    found = {int(match.group(1)) for key in form.values if (match := _TOOL_KEY.match(key))}
    return sorted(found)


def tool_forms(form: Form, plugins: Plugins) -> list[ToolForm]:
    return [tool_form(plugins, form.get(f"tools.{index}.type"), index) for index in tool_indexes(form)]


def next_tool_index(form: Form) -> int:
    indexes = tool_indexes(form)
    return indexes[-1] + 1 if indexes else 0


def form_of_agent(described: Mapping[str, Any], kb_names: Mapping[str, str], plugins: Plugins) -> Form:
    """A stored agent (``describe_agent``) as the builder's values; ``kb_names`` maps ids to names."""
    values: dict[str, str] = {
        "name": str(described["name"]),
        "kind": str(described["kind"]),
        "system_prompt": described.get("system_prompt") or "",
        "greeting": described.get("greeting") or "",
        "fallback_message": described.get("fallback_message") or "",
    }
    info = described.get("business_info") or {}
    for key, *_ in BUSINESS_FIELDS:
        values[f"business_info.{key}"] = str(info.get(key) or "")
    values["business_info.facts"] = "\n".join(str(fact) for fact in info.get("facts") or [])
    settings = described.get("model_settings") or {}
    model = settings.get("model")
    values["model_settings.integration"] = settings.get("integration") or (SERVER_KEY if model else "")
    values["model_settings.model"] = str(model or "")
    temperature = settings.get("temperature")
    values["model_settings.temperature"] = "" if temperature is None else str(temperature)
    lists: dict[str, list[str]] = {
        "knowledge_bases": [kb_names[kb_id] for kb_id in described.get("knowledge_base_ids") or [] if kb_id in kb_names]
    }
    for index, tool in enumerate(described.get("tools") or []):
        values[f"tools.{index}.type"] = str(tool["type"])
        values[f"tools.{index}.name"] = str(tool["name"])
        known, _description, specs = tool_specs(plugins, str(tool["type"]), index)
        config = tool.get("config") or {}
        if known:
            values.update(form_values(specs, config))
        else:  # kept as it is until the plugin is back (or the tool removed)
            values[f"tools.{index}.config_json"] = json.dumps(config)
    return Form(values=values, lists=lists)


def spec_from_form(form: Form, plugins: Plugins, stored_model_settings: Mapping[str, Any]) -> tuple[dict[str, Any], list[int]]:
    """The spec a submitted builder form declares, and the form index of each tool in it.

    Model settings the builder does not show (fallback model, timeouts, ...) are kept from
    ``stored_model_settings``. Controls that cannot become data (a number that is not one,
    JSON that does not parse) are recorded on ``form``.
    """
    info: dict[str, Any] = {key: form.get(f"business_info.{key}") for key, *_ in BUSINESS_FIELDS}
    info["facts"] = [line.strip() for line in form.get("business_info.facts").splitlines() if line.strip()]
    settings = {k: v for k, v in stored_model_settings.items() if k not in ("integration", "model", "temperature")}
    integration = form.get("model_settings.integration").strip()
    model = form.get("model_settings.model").strip()
    if integration == "":
        settings.pop("fallback_model", None)  # offline mode: no model at all
    else:
        if not model:
            form.error("model_settings.model", "model_settings.model: expected a model name (e.g. 'gpt-4o-mini') for the chosen integration")
        settings["model"] = model or None
        if integration != SERVER_KEY:
            settings["integration"] = integration
    temperature = form.get("model_settings.temperature").strip()
    if temperature:
        try:
            settings["temperature"] = float(temperature)
        except ValueError:
            form.error("model_settings.temperature", "model_settings.temperature: expected a number from 0 to 2")
    tools: list[dict[str, Any]] = []
    positions: list[int] = []
    for tool in tool_forms(form, plugins):
        if form.checked(f"{tool.prefix}remove"):
            continue
        if tool.known:
            config = data_from_form(tool.specs, form)
        else:
            try:
                config = json.loads(form.get(f"{tool.prefix}config_json") or "{}")
            except ValueError:
                config = {}
        tools.append({"type": tool.type, "name": form.get(f"{tool.prefix}name").strip(), "config": config})
        positions.append(tool.index)
    spec = {
        "name": form.get("name").strip(),
        "kind": form.get("kind") or "chat",
        "system_prompt": form.get("system_prompt"),
        "business_info": info,
        "model_settings": {k: v for k, v in settings.items() if v is not None},
        "knowledge_bases": form.many("knowledge_bases"),
        "tools": tools,
        "greeting": form.get("greeting"),
        "fallback_message": form.get("fallback_message"),
    }
    return spec, positions


def located(problems: Sequence[Problem], positions: Sequence[int], fields: set[str]) -> SpecError:
    """``problems`` with tool list positions turned into form indexes, each moved onto the
    nearest control that exists (a header inside a JSON control shows on that control)."""
    moved: list[Problem] = []
    for problem in problems:
        loc = list(problem.loc)
        if len(loc) >= 2 and loc[0] == "tools" and isinstance(loc[1], int) and loc[1] < len(positions):
            loc[1] = positions[loc[1]]
        while len(loc) > 1 and ".".join(str(part) for part in loc) not in fields:
            loc.pop()
        moved.append(Problem(tuple(loc), problem.message))
    return SpecError(moved)


def field_names(form: Form, plugins: Plugins) -> set[str]:
    """Every control of the builder (to place problems on)."""
    names = {"name", "kind", "system_prompt", "greeting", "fallback_message", "knowledge_bases", "business_info.facts"}
    names |= {f"business_info.{key}" for key, *_ in BUSINESS_FIELDS}
    names |= {"model_settings.integration", "model_settings.model", "model_settings.temperature"}
    for tool in tool_forms(form, plugins):
        names |= {f"{tool.prefix}name", f"{tool.prefix}type"} | {spec.name for spec in tool.specs}
    return names
