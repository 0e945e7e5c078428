"""What values an apply file may hold: ``${CALLABLE_BASE_URL}`` substituted, secrets refused.

Environment variables are not read (they would carry secrets into stored configs), and a
literal secret (a key named like one, or an OpenAI-style key anywhere) is refused with the
advice to connect an integration and reference it by name.

Secret references (``{{secret:INTEGRATION.FIELD}}``, read from the vault when a tool runs)
are collected with their location by :func:`secret_references`, so the write can check each
against the workspace's integrations before anything is stored (:mod:`.write`); one that is
not written like that is a problem here.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from callable_agents.apply.document import Problems
from callable_agents.core.store.agent_spec import Loc, Problem

BASE_URL_VARIABLE = "CALLABLE_BASE_URL"
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
# What a reference must look like to be resolved (integration names may contain dots, so the
# field is what follows the last one); the same rule the tools resolve with.
_SECRET_REFERENCE_PARTS = re.compile(r"([A-Za-z0-9][A-Za-z0-9_.-]{0,99})\.([A-Za-z_][A-Za-z0-9_]{0,63})")
_AUTH_SCHEME = re.compile(r"^(bearer|basic|token|bot)?$", re.IGNORECASE)
# Values that are secrets whatever their key is called (OpenAI-style keys).
_SECRET_VALUE = re.compile(r"^(sk|rk)-[A-Za-z0-9_-]{16,}$")
_SECRET_ADVICE = (
    "secrets are never written into an apply file: connect an integration "
    "(`callable integrations connect PROVIDER --name NAME`) and reference it by name"
)


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


def substitute_variables(data: Any, variables: Mapping[str, str], problems: Problems, loc: Loc = ()) -> Any:
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
        return {key: substitute_variables(value, variables, problems, loc + (key,)) for key, value in data.items()}
    if isinstance(data, list):
        return [substitute_variables(value, variables, problems, loc + (index,)) for index, value in enumerate(data)]
    return data


def secret_problems(data: Any) -> list[Problem]:
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


@dataclass(frozen=True)
class SecretReference:
    """One ``{{secret:INTEGRATION.FIELD}}`` in the file, at ``loc``."""

    loc: Loc
    integration: str
    field: str


def secret_references(data: Any) -> tuple[list[SecretReference], list[Problem]]:
    """Every secret reference in ``data`` with its location, and the ones written wrongly."""
    references: list[SecretReference] = []
    problems: list[Problem] = []
    for loc, _key, value in _walk(data):
        if not isinstance(value, str) or "{{" not in value:
            continue
        for match in _SECRET_REFERENCE.finditer(value):
            inner = match.group(0)[len("{{secret:") : -2]
            parts = _SECRET_REFERENCE_PARTS.fullmatch(inner)
            if parts is None:
                problems.append(
                    Problem(
                        loc,
                        f"{match.group(0)[:60]!r} is not a secret reference; expected {{{{secret:INTEGRATION.FIELD}}}}, "
                        "e.g. {{secret:crm.token}}",
                    )
                )
                continue
            references.append(SecretReference(loc, parts.group(1), parts.group(2)))
    return references, problems
