"""A pydantic config schema as form controls, and a submitted form back as data.

A tool's config schema, a provider's public and secret fields and a channel's config are
pydantic models declared by plugins; the dashboard builds their forms from the models, so a
third-party plugin gets a form with no dashboard code. The mapping: ``str`` → a text box
(a text area when the field says ``json_schema_extra={"widget": "textarea"}`` or allows more
than 300 characters), ``int``/``float`` → a number, ``bool`` → a checkbox, a ``Literal`` or
``Enum`` → a select, a list of strings → a text area with one item a line, anything else
(nested models, mappings) → a JSON text area. A model of secrets gives password boxes that
are never filled in again.

Values come back as data for the same model; its own validation (through the service
layer) says what is wrong, and :class:`~callable_agents.dashboard.forms.Form` puts each
error beside its field.
"""

from __future__ import annotations

import enum
import json
import types
import typing
from dataclasses import dataclass
from typing import Any, Literal

from annotated_types import MaxLen
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from callable_agents.dashboard.forms import Form

Kind = Literal["text", "textarea", "number", "checkbox", "select", "lines", "json", "password"]


@dataclass(frozen=True)
class FieldSpec:
    """One control of a generated form."""

    name: str  # the form field's name: prefix + the model field's name
    key: str  # the model field's name
    label: str
    kind: Kind
    required: bool
    help: str
    default: str  # the default as the control shows it ("" for none)
    choices: tuple[str, ...] = ()
    step: str = "any"


def _strip_optional(annotation: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        if len(args) == 1:
            return args[0], True
    return annotation, False


def _unwrap_annotated(annotation: Any) -> Any:
    while typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    return annotation


def _max_length(info: FieldInfo) -> int | None:
    for item in info.metadata:
        if isinstance(item, MaxLen):
            return item.max_length
    return None


def _kind_of(annotation: Any, info: FieldInfo, *, secret: bool) -> tuple[Kind, tuple[str, ...]]:
    annotation = _unwrap_annotated(annotation)
    annotation, _ = _strip_optional(annotation)
    annotation = _unwrap_annotated(annotation)
    if secret:
        return "password", ()
    extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
    widget = extra.get("widget")
    if typing.get_origin(annotation) is Literal:
        return "select", tuple(str(arg) for arg in typing.get_args(annotation))
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return "select", tuple(str(member.value) for member in annotation)
    if annotation is bool:
        return "checkbox", ()
    if annotation in (int, float):
        return "number", ()
    if annotation is str:
        limit = _max_length(info)
        return ("textarea" if widget == "textarea" or (limit is not None and limit > 300) else "text"), ()
    if typing.get_origin(annotation) in (list, tuple, set, frozenset):
        args = typing.get_args(annotation)
        if args and _unwrap_annotated(args[0]) is str:
            return "lines", ()
    return "json", ()


def _label(key: str, info: FieldInfo) -> str:
    return info.title or key.replace("_", " ").capitalize()


def _shown_default(info: FieldInfo, kind: Kind) -> str:
    if info.is_required() or kind == "password":
        return ""
    default = info.get_default(call_default_factory=True)
    if default is None:
        return ""
    if kind == "checkbox":
        return "on" if default else ""
    if kind == "lines":
        return "\n".join(str(item) for item in default)
    if kind == "json":
        if isinstance(default, BaseModel):  # a nested settings model's default (default_factory=Model)
            default = default.model_dump(mode="json")
        return json.dumps(default, indent=2) if default not in ({}, []) else ""
    if isinstance(default, enum.Enum):
        return str(default.value)
    return str(default)


def fields_of(model: type[BaseModel], *, prefix: str = "", secret: bool = False) -> list[FieldSpec]:
    """The controls for ``model``'s fields, in declaration order."""
    hints = typing.get_type_hints(model, include_extras=True)
    specs: list[FieldSpec] = []
    for key, info in model.model_fields.items():
        annotation = hints.get(key, info.annotation)
        kind, choices = _kind_of(annotation, info, secret=secret)
        base, optional = _strip_optional(_unwrap_annotated(annotation))
        step = "1" if _unwrap_annotated(base) is int else "any"
        specs.append(
            FieldSpec(
                name=prefix + key,
                key=key,
                label=_label(key, info),
                kind=kind,
                required=info.is_required() and not optional and kind != "checkbox",
                help=info.description or "",
                default=_shown_default(info, kind),
                choices=choices,
                step=step,
            )
        )
    return specs


def form_values(specs: list[FieldSpec], data: dict[str, Any]) -> dict[str, str]:
    """Stored data as the controls show it (to edit what exists)."""
    shown: dict[str, str] = {}
    for spec in specs:
        if spec.kind == "password" or spec.key not in data or data[spec.key] is None:
            continue
        value = data[spec.key]
        if spec.kind == "checkbox":
            shown[spec.name] = "on" if value else ""
        elif spec.kind == "lines":
            shown[spec.name] = "\n".join(str(item) for item in value)
        elif spec.kind == "json":
            shown[spec.name] = json.dumps(value, indent=2)
        else:
            shown[spec.name] = str(value)
    return shown


def data_from_form(specs: list[FieldSpec], form: Form) -> dict[str, Any]:
    """The submitted controls as data for the model. An empty optional control is left out
    (the model's default applies); a number or JSON that does not parse is a field error."""
    data: dict[str, Any] = {}
    for spec in specs:
        raw = form.get(spec.name)
        if spec.kind == "checkbox":
            data[spec.key] = form.checked(spec.name)
            continue
        text = raw.strip() if spec.kind not in ("textarea", "password") else raw
        if not text.strip():
            if spec.required:
                form.error(spec.name, f"{spec.key}: this field is required")
            continue
        if spec.kind == "number":
            try:
                data[spec.key] = int(text) if spec.step == "1" else float(text)
            except ValueError:
                form.error(spec.name, f"{spec.key}: expected a {'whole ' if spec.step == '1' else ''}number")
        elif spec.kind == "lines":
            data[spec.key] = [line.strip() for line in text.splitlines() if line.strip()]
        elif spec.kind == "json":
            try:
                data[spec.key] = json.loads(text)
            except ValueError as exc:
                form.error(spec.name, f"{spec.key}: expected JSON ({exc.args[0] if exc.args else 'not valid'})")
        else:
            data[spec.key] = text
    return data
