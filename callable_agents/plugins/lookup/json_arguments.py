"""Tool arguments described by a small JSON Schema subset: checked at config time, enforced at call time.

The schema a business writes for a tool is shown to the model as the tool's parameters and
then used to validate what the model sends back. Only the part of JSON Schema that
function-calling models follow reliably is accepted (types, properties, required, items,
enum, bounds, length, pattern, annotations); any other keyword is refused when the tool is
configured, so nothing in a schema is silently left unenforced.

Validation returns readable problems ("qty: expected integer, got string") that go back to
the model, so it can correct the call; it never raises for bad arguments.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Mapping
from typing import Any

JSON_TYPES = ("string", "integer", "number", "boolean", "array", "object", "null")
SCALAR_TYPES = frozenset({"string", "integer", "number", "boolean"})
ANNOTATION_KEYWORDS = frozenset({"description", "title", "default", "examples", "format"})
VALIDATION_KEYWORDS = frozenset(
    {
        "type",
        "properties",
        "required",
        "additionalProperties",
        "items",
        "enum",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "minLength",
        "maxLength",
        "pattern",
        "minItems",
        "maxItems",
    }
)
SUPPORTED_KEYWORDS = ANNOTATION_KEYWORDS | VALIDATION_KEYWORDS
PROPERTY_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
MAX_DEPTH = 8
MAX_PROBLEMS = 8


class SchemaError(ValueError):
    """A schema outside the supported subset; the message starts with the path at fault."""


# -- checking a schema (config time) ----------------------------------------------------------


def check_object_schema(schema: object, path: str = "parameters") -> dict[str, Any]:
    """Check that ``schema`` is an object schema whose properties models can fill; return it.

    Top-level property names must be identifiers (they become URL placeholders and argument
    names), each with a ``type``.
    """
    if not isinstance(schema, Mapping):
        raise SchemaError(f'{path}: expected a JSON schema object like {{"type": "object", "properties": {{...}}}}')
    if schema.get("type") != "object":
        raise SchemaError(f'{path}.type: expected "object"')
    check_schema(schema, path)
    properties = schema.get("properties", {})
    for name, property_schema in properties.items():
        if not PROPERTY_NAME.match(name):
            raise SchemaError(
                f"{path}.properties: {name[:40]!r} is not a valid parameter name "
                "(expected letters, digits and '_', not starting with a digit, at most 64)"
            )
        if "type" not in property_schema:
            raise SchemaError(f"{path}.properties.{name}: expected a 'type' (one of {', '.join(JSON_TYPES)})")
    return dict(schema)


def check_schema(schema: object, path: str, depth: int = 0) -> None:
    """Check one (sub)schema recursively; raise :class:`SchemaError` naming the path."""
    if depth > MAX_DEPTH:
        raise SchemaError(f"{path}: nested deeper than {MAX_DEPTH} levels")
    if not isinstance(schema, Mapping):
        raise SchemaError(f"{path}: expected a JSON schema object")
    unsupported = sorted(key for key in schema if key not in SUPPORTED_KEYWORDS)
    if unsupported:
        raise SchemaError(
            f"{path}: unsupported keyword {unsupported[0][:40]!r} (supported: {', '.join(sorted(SUPPORTED_KEYWORDS))})"
        )
    types = schema_types(schema)
    if "type" in schema:
        if not types or any(t not in JSON_TYPES for t in types):
            raise SchemaError(f"{path}.type: expected one of {', '.join(JSON_TYPES)} (or a list of them)")
    _check_object_keywords(schema, path, depth)
    if "items" in schema:
        check_schema(schema["items"], f"{path}.items", depth + 1)
    if "enum" in schema:
        enum = schema["enum"]
        if not isinstance(enum, list) or not enum:
            raise SchemaError(f"{path}.enum: expected a non-empty list of values")
        for value in enum:
            if types and not any(_has_type(value, t) for t in types):
                raise SchemaError(f"{path}.enum: value {value!r:.40} does not match type {'/'.join(types)}")
    for keyword in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        if keyword in schema and not _is_number(schema[keyword]):
            raise SchemaError(f"{path}.{keyword}: expected a number")
    for keyword in ("minLength", "maxLength", "minItems", "maxItems"):
        value = schema.get(keyword)
        if keyword in schema and not (isinstance(value, int) and not isinstance(value, bool) and value >= 0):
            raise SchemaError(f"{path}.{keyword}: expected a non-negative integer")
    if "pattern" in schema:
        if not isinstance(schema["pattern"], str):
            raise SchemaError(f"{path}.pattern: expected a regular expression string")
        try:
            _compiled(schema["pattern"])
        except re.error as exc:
            raise SchemaError(f"{path}.pattern: not a valid regular expression ({exc})") from None
    if "description" in schema and not isinstance(schema["description"], str):
        raise SchemaError(f"{path}.description: expected a string")


def _check_object_keywords(schema: Mapping[str, Any], path: str, depth: int) -> None:
    properties = schema.get("properties", {})
    if not isinstance(properties, Mapping):
        raise SchemaError(f"{path}.properties: expected an object mapping names to schemas")
    for name, property_schema in properties.items():
        check_schema(property_schema, f"{path}.properties.{name}", depth + 1)
    required = schema.get("required", [])
    if not isinstance(required, list) or not all(isinstance(name, str) for name in required):
        raise SchemaError(f"{path}.required: expected a list of property names")
    if len(set(required)) != len(required):
        raise SchemaError(f"{path}.required: lists a name twice")
    missing = [name for name in required if name not in properties]
    if missing:
        raise SchemaError(f"{path}.required: {missing[0][:40]!r} is not in {path}.properties")
    if "additionalProperties" in schema and not isinstance(schema["additionalProperties"], bool):
        raise SchemaError(f"{path}.additionalProperties: expected true or false")


def schema_types(schema: Mapping[str, Any]) -> tuple[str, ...]:
    """The schema's ``type`` as a tuple (empty when it allows any type)."""
    declared = schema.get("type")
    if declared is None:
        return ()
    if isinstance(declared, str):
        return (declared,)
    if isinstance(declared, list) and all(isinstance(t, str) for t in declared):
        return tuple(declared)
    return ()


# -- validating values (call time) ------------------------------------------------------------


def validate_arguments(schema: Mapping[str, Any], arguments: object) -> tuple[dict[str, Any], list[str]]:
    """Validate the model's arguments against a checked object schema.

    Returns the arguments to use and the problems found (empty when valid). Unknown argument
    names are refused (a model must not invent parameters that would reach the API), and a
    ``null`` for an optional argument counts as leaving it out, since models often send that.
    """
    if not isinstance(arguments, Mapping):
        return {}, [f"expected an object of named arguments, got {_json_type_name(arguments)}"]
    properties: Mapping[str, Any] = schema.get("properties", {})
    required = schema.get("required", [])
    problems: list[str] = []
    cleaned: dict[str, Any] = {}
    for name, value in arguments.items():
        if name not in properties:
            known = ", ".join(properties) or "none"
            problems.append(f"{str(name)[:40]}: unknown argument (expected: {known})")
            continue
        if value is None and "null" not in schema_types(properties[name]):
            continue  # left out; reported below if it is required
        problems += validate_value(properties[name], value, name)
        cleaned[name] = value
    for name in required:
        if arguments.get(name) is None and "null" not in schema_types(properties[name]):
            problems.append(f"{name}: required")
    return cleaned, problems[:MAX_PROBLEMS]


def validate_value(schema: Mapping[str, Any], value: object, path: str) -> list[str]:
    """The problems of one value against one (sub)schema."""
    types = schema_types(schema)
    if types and not any(_has_type(value, t) for t in types):
        return [f"{path}: expected {' or '.join(types)}, got {_json_type_name(value)}"]
    if "enum" in schema and not any(_json_equal(value, choice) for choice in schema["enum"]):
        choices = ", ".join(repr(choice) for choice in schema["enum"][:20])
        return [f"{path}: expected one of {choices}"]
    problems: list[str] = []
    if _is_number(value):
        problems += _number_problems(schema, value, path)  # type: ignore[arg-type]
    elif isinstance(value, str):
        problems += _string_problems(schema, value, path)
    elif isinstance(value, list):
        problems += _array_problems(schema, value, path)
    elif isinstance(value, dict):
        problems += _object_problems(schema, value, path)
    return problems


def _number_problems(schema: Mapping[str, Any], value: float, path: str) -> list[str]:
    if "minimum" in schema and value < schema["minimum"]:
        return [f"{path}: expected at least {schema['minimum']}"]
    if "maximum" in schema and value > schema["maximum"]:
        return [f"{path}: expected at most {schema['maximum']}"]
    if "exclusiveMinimum" in schema and value <= schema["exclusiveMinimum"]:
        return [f"{path}: expected more than {schema['exclusiveMinimum']}"]
    if "exclusiveMaximum" in schema and value >= schema["exclusiveMaximum"]:
        return [f"{path}: expected less than {schema['exclusiveMaximum']}"]
    return []


def _string_problems(schema: Mapping[str, Any], value: str, path: str) -> list[str]:
    if "minLength" in schema and len(value) < schema["minLength"]:
        return [f"{path}: expected at least {schema['minLength']} characters"]
    if "maxLength" in schema and len(value) > schema["maxLength"]:
        return [f"{path}: expected at most {schema['maxLength']} characters"]
    if "pattern" in schema and not _compiled(schema["pattern"]).search(value):
        return [f"{path}: expected text matching {schema['pattern']!r}"]
    return []


def _array_problems(schema: Mapping[str, Any], value: list[Any], path: str) -> list[str]:
    if "minItems" in schema and len(value) < schema["minItems"]:
        return [f"{path}: expected at least {schema['minItems']} items"]
    if "maxItems" in schema and len(value) > schema["maxItems"]:
        return [f"{path}: expected at most {schema['maxItems']} items"]
    problems: list[str] = []
    if "items" in schema:
        for index, item in enumerate(value):
            problems += validate_value(schema["items"], item, f"{path}[{index}]")
            if len(problems) >= MAX_PROBLEMS:
                break
    return problems


def _object_problems(schema: Mapping[str, Any], value: dict[str, Any], path: str) -> list[str]:
    properties: Mapping[str, Any] = schema.get("properties", {})
    problems = [f"{path}.{name}: required" for name in schema.get("required", []) if name not in value]
    for name, item in value.items():
        if name in properties:
            problems += validate_value(properties[name], item, f"{path}.{name}")
        elif schema.get("additionalProperties") is False:
            problems.append(f"{path}.{str(name)[:40]}: unknown field (expected: {', '.join(properties) or 'none'})")
    return problems


def _has_type(value: object, json_type: str) -> bool:
    if json_type == "string":
        return isinstance(value, str)
    if json_type == "integer":
        return (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, float) and value.is_integer()
        )
    if json_type == "number":
        return _is_number(value)
    if json_type == "boolean":
        return isinstance(value, bool)
    if json_type == "array":
        return isinstance(value, list)
    if json_type == "object":
        return isinstance(value, dict)
    return json_type == "null" and value is None


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _json_equal(left: object, right: object) -> bool:
    """JSON equality: ``True`` is not ``1`` (Python says it is)."""
    if isinstance(left, bool) or isinstance(right, bool):
        return isinstance(left, bool) and isinstance(right, bool) and left == right
    return left == right


def _json_type_name(value: object) -> str:
    for json_type in ("null", "boolean", "integer", "number", "string", "array", "object"):
        if _has_type(value, json_type):
            return json_type
    return type(value).__name__


@functools.lru_cache(maxsize=256)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)
