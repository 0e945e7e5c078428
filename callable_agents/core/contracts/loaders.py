"""The knowledge-loader and embeddings contracts.

A **loader** turns one knowledge source (a URL, an uploaded file, pasted text, or whatever
a plugin defines) into :class:`Document` objects: extracted text plus metadata. The
knowledge base does the rest — normalising, chunking, embedding, indexing — so a loader
never touches the database or the index.

An **embeddings type** names a LangChain ``Embeddings`` factory. A knowledge base records
the model that built its index as ``"<type>"`` or ``"<type>:<model>"`` (e.g.
``openai:text-embedding-3-small``); the part after the colon reaches the factory as
:attr:`EmbeddingsRequest.model`. A knowledge base created without a model gets the one
type that says it is the ``default``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from callable_agents.core.errors import CallableError

if TYPE_CHECKING:
    from langchain_core.embeddings import Embeddings

    from callable_agents.core.config import Settings
    from callable_agents.core.runtime import Runtime


class LoadError(CallableError):
    """A source could not be loaded (unreachable URL, corrupt or encrypted file, no text, ...).

    The message is the reason recorded on the failed source, so it must say what went wrong
    and, where possible, what to do about it. It never carries secrets.
    """

    status_code = 422


@dataclass(frozen=True)
class Document:
    """One extracted document: text plus metadata.

    Known metadata keys: ``title``, ``url``, ``page`` (1-based, for paged formats), ``row``
    (for tabular records) and ``bytes`` (raw size fetched, for counts). The text may use
    Markdown headings (``# Heading``); the chunker keeps the heading a passage sits under.
    """

    text: str
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class LoadRequest:
    """One source to load.

    ``options`` is the source's stored options, already validated by the loader's
    ``options_schema`` (so a loader may rebuild the model with ``schema(**options)``).
    ``note`` reports something worth telling the user that isn't a failure, e.g. a crawled
    page skipped because robots.txt disallows it; the CLI prints notes and logs keep them.
    """

    runtime: Runtime
    workspace_id: str
    source_id: str
    kind: str
    location: str
    title: str
    options: dict[str, Any]
    content: bytes | None
    note: Callable[[str], None] = field(default=lambda message: None)

    @property
    def settings(self) -> Settings:
        return self.runtime.settings


@dataclass(frozen=True)
class SourceDraft:
    """A source about to be added, for a loader's add-time ``check``."""

    settings: Settings
    location: str
    title: str
    options: BaseModel
    content: bytes | None


LoadFunction = Callable[[LoadRequest], AsyncIterator[Document]]
CheckFunction = Callable[[SourceDraft], None]


@dataclass(frozen=True)
class LoaderType:
    """A kind of knowledge source.

    ``check`` (optional) refuses bad input when the source is added, raising
    :class:`~callable_agents.core.errors.InvalidInput` (an unsupported file type, an empty
    text, a malformed URL), so the user hears about it at once instead of finding a failed
    source later. ``refreshable`` sources (URLs) are re-loaded by ``callable kb refresh``
    and by their refresh interval; others change only when they are replaced.
    """

    name: str  # the source kind it handles
    description: str
    options_schema: type[BaseModel]
    load: LoadFunction
    check: CheckFunction | None = None
    refreshable: bool = False


@dataclass(frozen=True)
class EmbeddingsRequest:
    """What an embeddings factory gets: the workspace (for its integrations) and the model."""

    runtime: Runtime
    workspace_id: str
    model: str  # the part after "<type>:" in the knowledge base's embedding_model; "" for the default


EmbeddingsFactory = Callable[[EmbeddingsRequest], "Embeddings | Awaitable[Embeddings]"]


@dataclass(frozen=True)
class EmbeddingsType:
    """A kind of embedding model.

    ``local`` types compute on this machine and are cheap to call (the knowledge base may
    embed a query inline); others are remote services. Vectors are L2-normalised by the
    knowledge base, whatever the model returns.
    """

    name: str
    description: str
    factory: EmbeddingsFactory
    local: bool = False
    # The embeddings used when a knowledge base names none; exactly one loaded type may say so.
    default: bool = False
