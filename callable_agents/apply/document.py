"""The apply file as YAML with line numbers: every problem is reported at ``FILE:LINE``.

:func:`parse_yaml` loads the document and records the line of every key and list item by
location (within a budget, so a few nested aliases cannot stand for billions of values);
:class:`Problems` collects what the checks find, each mapped to its line.
"""

from __future__ import annotations

from typing import Any

import yaml

from callable_agents.apply.report import ApplyError
from callable_agents.core.errors import InvalidInput
from callable_agents.core.store.agent_spec import Loc, Problem

MAX_VALUES = 200_000
MAX_DEPTH = 50


class Problems:
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
