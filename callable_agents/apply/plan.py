"""The plan: a fully checked document in stored form, and how it differs from what is stored."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from callable_agents.apply.report import Action
from callable_agents.apply.schema import KnowledgeBaseInput, WorkspaceInput
from callable_agents.apply.values import SecretReference
from callable_agents.core.models import Source
from callable_agents.core.store.agent_spec import AgentSpecInput, Loc
from callable_agents.core.store.channels import ChannelSpecInput


@dataclass
class SourcePlan:
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


@dataclass
class Plan:
    """A fully checked document, ready to write."""

    workspace: WorkspaceInput
    knowledge_bases: list[KnowledgeBaseInput]
    sources: dict[str, list[SourcePlan]]  # by knowledge base name
    agents: list[AgentSpecInput]
    channels: list[ChannelSpecInput]
    # Every {{secret:INTEGRATION.FIELD}} in the file, checked against the workspace on write.
    secret_references: list[SecretReference] = field(default_factory=list)


def source_differences(source: Source, plan: SourcePlan) -> list[str]:
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


def action_of(changed: bool, existed: bool) -> Action:
    if not changed:
        return "unchanged"
    return "updated" if existed else "created"
