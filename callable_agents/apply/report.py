"""What an apply did: the report, one item per declared object, and the error for a bad file."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from callable_agents.core.errors import InvalidInput
from callable_agents.core.store.agent_spec import Problem


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
    """An invalid apply file: every problem with its line, field path and what was expected.

    The message has one problem a line, ``FILE:LINE: field: expected ...``, all of them (a
    file with twelve mistakes is fixed in one pass, not twelve), in file order; with more
    than one, a last line counts them and says nothing was written.
    """

    def __init__(self, label: str, problems: list[tuple[int | None, Problem]]) -> None:
        self.label = label
        self.problems = problems
        lines = [self.format(line, problem) for line, problem in problems]
        if len(lines) > 1:
            lines.append(f"{len(lines)} problems in {label}; nothing was written")
        super().__init__("\n".join(lines))

    def format(self, line: int | None, problem: Problem) -> str:
        return f"{self.label}:{line}: {problem}" if line else f"{self.label}: {problem}"
