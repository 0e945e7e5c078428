"""The apply file's schema: the workspace, knowledge bases and their sources, as pydantic models.

Agents and channels are checked by the store's own specs
(:class:`~callable_agents.core.store.agent_spec.AgentSpecInput`,
:class:`~callable_agents.core.store.channels.ChannelSpecInput`), the same the CLI and API use.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from callable_agents.core.knowledge.store import MIN_REFRESH_INTERVAL_SECONDS
from callable_agents.core.store.agent_spec import NAME_PATTERN
from callable_agents.core.store.workspaces import SLUG_PATTERN


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
    :class:`~callable_agents.core.store.agent_spec.AgentSpecInput`, channels as
    :class:`~callable_agents.core.store.channels.ChannelSpecInput`."""

    version: Literal[1] = 1
    workspace: WorkspaceInput
    knowledge_bases: list[dict[str, Any]] = Field(default_factory=list)
    agents: list[dict[str, Any]] = Field(default_factory=list)
    channels: list[dict[str, Any]] = Field(default_factory=list)
