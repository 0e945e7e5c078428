"""Embedding models for knowledge bases: resolving a model name, embedding, normalising.

A knowledge base names its model as ``"<type>"`` or ``"<type>:<model>"``; the type is an
``EmbeddingsType`` registered by a plugin. A knowledge base created without a model gets
the type that is the ``default`` (:func:`default_model_spec`).
Vectors are always float32 and L2-normalised here, so inner product is cosine similarity
whatever the model returns.
"""

from __future__ import annotations

import asyncio
import inspect
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from callable_agents.core.errors import InvalidInput
from callable_agents.core.knowledge.chunking import TOKENIZER_NAME
from callable_agents.core.contracts.loaders import EmbeddingsRequest, EmbeddingsType

if TYPE_CHECKING:
    from langchain_core.embeddings import Embeddings

    from callable_agents.core.plugins import Plugins
    from callable_agents.core.runtime import Runtime

EMBED_BATCH_SIZE = 256
# Remote models may depend on an integration whose key changes; local ones never do.
REMOTE_MODEL_TTL_SECONDS = 300.0
_SPEC = re.compile(r"^[a-z0-9][a-z0-9_.-]*(:[A-Za-z0-9_./@-]+)?$")


@dataclass(frozen=True)
class ModelSpec:
    type_name: str
    model: str

    @property
    def name(self) -> str:
        return f"{self.type_name}:{self.model}" if self.model else self.type_name


def parse_model_spec(spec: str) -> ModelSpec:
    spec = spec.strip()
    if not _SPEC.match(spec):
        raise InvalidInput(
            "embedding_model: expected TYPE or TYPE:MODEL (e.g. 'openai:text-embedding-3-small'), "
            f"got {spec!r}"
        )
    type_name, _, model = spec.partition(":")
    return ModelSpec(type_name, model)


def check_model_spec(plugins: Plugins, spec: str) -> ModelSpec:
    """Parse ``spec`` and check an embeddings plugin provides its type."""
    parsed = parse_model_spec(spec)
    if parsed.type_name not in plugins.embeddings:
        known = ", ".join(sorted(item.name for item in plugins.embeddings)) or "none"
        raise InvalidInput(f"embedding_model: unknown embeddings type {parsed.type_name!r}; available: {known}")
    return parsed


def default_model_spec(plugins: Plugins) -> str:
    """The model a knowledge base gets when it names none: the default embeddings type."""
    kind = plugins.default_embeddings
    if kind is None:
        known = ", ".join(sorted(item.name for item in plugins.embeddings)) or "none"
        raise InvalidInput(
            "embedding_model: no loaded embeddings plugin is the default, so a knowledge base must name "
            f"its model (TYPE or TYPE:MODEL; available: {known})"
        )
    return kind.name


def normalise_vectors(vectors: object) -> np.ndarray:
    """float32 rows of unit length (zero rows stay zero)."""
    array = np.array(vectors, dtype=np.float32, copy=True)
    if array.ndim != 2:
        raise ValueError(f"expected a 2-D array of embeddings, got shape {array.shape}")
    np.nan_to_num(array, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    np.divide(array, norms, out=array, where=norms > 0)
    return array


class EmbeddingModel:
    """One resolved model: embeds documents and queries, normalised, off the event loop."""

    def __init__(self, spec: ModelSpec, kind: EmbeddingsType, embeddings: Embeddings) -> None:
        self.spec = spec
        self.kind = kind
        self.embeddings = embeddings
        self.texts_embedded = 0  # how much work this model has done (ingestion stats, tests)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def takes_token_ids(self) -> bool:
        """Whether the model embeds the chunker's token ids directly (same tokenizer)."""
        return getattr(self.embeddings, "tokenizer_name", None) == TOKENIZER_NAME and callable(
            getattr(self.embeddings, "embed_token_ids", None)
        )

    async def embed_documents(
        self,
        texts: Sequence[str],
        *,
        token_ids: Sequence[list[int] | None] | None = None,
        on_batch: Callable[[int], None] | None = None,
    ) -> np.ndarray:
        """Embed ``texts`` in batches; ``on_batch(n)`` after each batch of ``n``.

        ``token_ids`` (the chunker's, per text) spare a model with the same tokenizer from
        tokenizing again.
        """
        use_ids = token_ids is not None and self.takes_token_ids and all(ids is not None for ids in token_ids)
        parts: list[np.ndarray] = []
        for start in range(0, len(texts), EMBED_BATCH_SIZE):
            batch = list(texts[start : start + EMBED_BATCH_SIZE])
            if use_ids:
                assert token_ids is not None
                ids = list(token_ids[start : start + EMBED_BATCH_SIZE])
                vectors = await asyncio.to_thread(self._embed_ids, ids)
            elif self.kind.local:
                vectors = await asyncio.to_thread(self._embed_local, batch)
            else:
                vectors = normalise_vectors(await self.embeddings.aembed_documents(batch))
            if vectors.shape[0] != len(batch):
                raise ValueError(
                    f"embedding model {self.name!r} returned {vectors.shape[0]} vectors for {len(batch)} texts"
                )
            parts.append(vectors)
            self.texts_embedded += len(batch)
            if on_batch is not None:
                on_batch(len(batch))
        if not parts:
            return np.zeros((0, 0), dtype=np.float32)
        return np.vstack(parts)

    def _embed_ids(self, ids: list[list[int] | None]) -> np.ndarray:
        # Not part of LangChain's Embeddings: an optional method (see takes_token_ids).
        embed_token_ids: Callable[[list[list[int] | None]], object] = getattr(self.embeddings, "embed_token_ids")
        return normalise_vectors(embed_token_ids(ids))

    def _embed_local(self, batch: list[str]) -> np.ndarray:
        # Optional fast path: an ``embed_array(texts) -> ndarray`` method skips building
        # Python lists of floats only to turn them back into an array.
        embed_array = getattr(self.embeddings, "embed_array", None)
        if callable(embed_array):
            return normalise_vectors(embed_array(batch))
        return normalise_vectors(self.embeddings.embed_documents(batch))

    def embed_query_sync(self, text: str) -> np.ndarray:
        """A query vector, computed in the calling thread (local models, inside a worker thread)."""
        embed_array = getattr(self.embeddings, "embed_array", None)
        if callable(embed_array):
            return normalise_vectors(embed_array([text]))[0]
        return normalise_vectors([self.embeddings.embed_query(text)])[0]

    async def embed_query(self, text: str) -> np.ndarray:
        if self.kind.local:
            return await asyncio.to_thread(self.embed_query_sync, text)
        return normalise_vectors([await self.embeddings.aembed_query(text)])[0]


class EmbeddingModels:
    """Resolved models of one process, by (workspace, model name).

    Local models are kept for the life of the process; remote ones for a few minutes, so a
    changed integration key is picked up without a restart.
    """

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._models: dict[tuple[str, str], tuple[EmbeddingModel, float]] = {}
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}

    @property
    def texts_embedded(self) -> int:
        """Texts embedded by this process's models so far (how much embedding work was done)."""
        return sum(model.texts_embedded for model, _expiry in self._models.values())

    async def get(self, workspace_id: str, spec_text: str) -> EmbeddingModel:
        spec = check_model_spec(self.runtime.plugins, spec_text)
        key = (workspace_id, spec.name)
        cached = self._models.get(key)
        if cached is not None and cached[1] > time.monotonic():
            return cached[0]
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            cached = self._models.get(key)
            if cached is not None and cached[1] > time.monotonic():
                return cached[0]
            kind = self.runtime.plugins.embeddings.get(spec.type_name)
            request = EmbeddingsRequest(runtime=self.runtime, workspace_id=workspace_id, model=spec.model)
            if kind.local:  # loading local weights is blocking work
                built = await asyncio.to_thread(kind.factory, request)
            else:
                built = kind.factory(request)
            if inspect.isawaitable(built):
                built = await built
            model = EmbeddingModel(spec, kind, built)
            ttl = float("inf") if kind.local else REMOTE_MODEL_TTL_SECONDS
            self._models[key] = (model, time.monotonic() + ttl)
            return model
