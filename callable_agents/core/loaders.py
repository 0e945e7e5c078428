"""The knowledge-loader and embeddings contracts."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

if TYPE_CHECKING:
    from langchain_core.embeddings import Embeddings

    from callable_agents.core.runtime import Runtime


@dataclass(frozen=True)
class Document:
    """One extracted document: text plus metadata (title, url, page, heading, ...)."""

    text: str
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class LoadRequest:
    """One source to load."""

    runtime: Runtime
    workspace_id: str
    source_id: str
    kind: str
    location: str
    title: str
    options: dict[str, Any]
    content: bytes | None


LoadFunction = Callable[[LoadRequest], AsyncIterator[Document]]


@dataclass(frozen=True)
class LoaderType:
    name: str  # the source kind it handles
    description: str
    options_schema: type[BaseModel]
    load: LoadFunction


@dataclass(frozen=True)
class EmbeddingsType:
    name: str
    description: str
    factory: Callable[[Runtime, str], Embeddings]  # (runtime, workspace_id) -> Embeddings
