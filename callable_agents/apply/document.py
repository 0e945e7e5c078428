"""The apply file as YAML with line numbers: every problem is reported at ``FILE:LINE``.

:func:`parse_yaml` loads the document and records the line of every key and list item by
location, after refusing what could not be walked safely: nesting deeper than
:data:`MAX_DEPTH` and aliases standing for more than :data:`MAX_VALUES` values (a few nested
aliases can stand for billions); :class:`Problems` collects what the checks find, each
mapped to its line.
"""

from __future__ import annotations

from typing import Any

import yaml

from callable_agents.apply.report import ApplyError
from callable_agents.core.errors import InvalidInput
from callable_agents.core.store.agent_spec import Loc, Problem

MAX_VALUES = 200_000  # values in the document once aliases are expanded
MAX_DEPTH = 32  # lists and mappings inside each other; a real file needs under ten
MAX_CHARS = 5_000_000  # long texts belong in files (file sources), not in the apply file


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


def parse_yaml(text: str, label: str, *, max_values: int = MAX_VALUES) -> tuple[Any, dict[Loc, int]]:
    """The document and the line of every key and list item (1-based), by location.

    Refused before anything is built: nesting deeper than :data:`MAX_DEPTH` (read from the
    parser's events, which need no recursion, so a file of ten thousand ``[`` is one line of
    error, not a ``RecursionError``), values that contain themselves through an alias, and
    documents standing for more than ``max_values`` values once aliases are expanded (a
    "billion laughs" file is measured on its node graph, each node once, so it is refused in
    the time it takes to read it), and texts over :data:`MAX_CHARS` characters.
    """
    if len(text) > MAX_CHARS:
        raise InvalidInput(
            f"{label}: the document is {len(text)} characters; the limit is {MAX_CHARS} "
            "(put long texts in files and declare them as file sources)"
        )
    root = None
    try:
        _check_nesting(text, label, max_values)
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        if root is not None:
            _check_expansion(root, label, max_values)
        data = yaml.SafeLoader("").construct_document(root) if root is not None else None
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
        _record_lines(root, (), lines, duplicates)
    if duplicates:
        raise ApplyError(label, [(line, problem) for line, problem in duplicates])
    return data, lines


def _too_deep(label: str, line: int) -> InvalidInput:
    where = f"{label}:{line}" if line else label
    return InvalidInput(
        f"{where}: expected values nested at most {MAX_DEPTH} levels deep (lists and mappings "
        "inside each other, counting what aliases repeat); flatten this part of the file"
    )


def _too_many(label: str, max_values: int) -> InvalidInput:
    return InvalidInput(f"{label}: the document has more than {max_values} values (counting what aliases repeat)")


def _check_nesting(text: str, label: str, max_values: int) -> None:
    """Refuse lists and mappings nested deeper than :data:`MAX_DEPTH` in the text itself, and
    a text too long to hold at most ``max_values`` values, while it is read (a value is at
    most two events: a list's start and end), before a node is built."""
    depth = 0
    for count, event in enumerate(yaml.parse(text, Loader=yaml.SafeLoader)):
        if count > 2 * max_values + 8:  # + the stream's and document's own events
            raise _too_many(label, max_values)
        if isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
            depth += 1
            if depth > MAX_DEPTH:
                mark = event.start_mark
                raise _too_deep(label, mark.line + 1 if mark is not None else 0)
        elif isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
            depth -= 1


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def _check_expansion(root: yaml.Node, label: str, max_values: int) -> None:
    """Refuse what aliases would make of the node graph: too deep, too many values, or a cycle.

    Each node is measured once (its expanded size and height are remembered), so the cost is
    the file's size, whatever the aliases multiply; the walk stops as soon as it is deeper
    than :data:`MAX_DEPTH`, so it never recurses further than that either.
    """
    sizes: dict[int, int] = {}
    heights: dict[int, int] = {}
    walking: set[int] = set()

    def measure(node: yaml.Node, depth: int) -> tuple[int, int]:
        key = id(node)
        line = int(node.start_mark.line) + 1
        if key in sizes:
            if depth + heights[key] > MAX_DEPTH:
                raise _too_deep(label, line)
            return sizes[key], heights[key]
        if key in walking:
            raise InvalidInput(
                f"{label}:{line}: expected an alias to refer to a value that does not contain it "
                "(recursive values cannot be stored)"
            )
        children = _children(node)
        if not children:
            size, height = 1, 1 if isinstance(node, (yaml.SequenceNode, yaml.MappingNode)) else 0
        else:
            if depth + 1 > MAX_DEPTH:
                raise _too_deep(label, line)
            walking.add(key)
            size, height = 1, 0
            for child in children:
                child_size, child_height = measure(child, depth + 1)
                size = min(size + child_size, max_values + 1)
                height = max(height, child_height)
            height += 1
            walking.discard(key)
        sizes[key], heights[key] = size, height
        return size, height

    size, _height = measure(root, 0)
    if size > max_values:
        raise _too_many(label, max_values)


def _record_lines(
    node: yaml.Node,
    loc: Loc,
    lines: dict[Loc, int],
    duplicates: list[tuple[int, Problem]],
) -> None:
    """Walk the node tree as the loaded data will be walked (aliases expanded); bounded by
    :func:`_check_expansion`, which ran first."""
    lines.setdefault(loc, node.start_mark.line + 1)
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
            _record_lines(value_node, loc + (key,), lines, duplicates)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines[loc + (index,)] = item.start_mark.line + 1
            _record_lines(item, loc + (index,), lines, duplicates)
