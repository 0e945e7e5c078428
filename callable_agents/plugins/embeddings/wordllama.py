"""The default embedding model: WordLlama, local, no network.

The wordllama wheel ships its weights and tokenizer, but its loader looks for the
tokenizer in the wrong folder and would then download it; pointing ``cache_dir`` at the
package folder with downloads disabled finds both files in the wheel.

Model names: ``wordllama`` (256 dimensions) or ``wordllama:64`` / ``wordllama:128``
(Matryoshka truncations of the same weights: smaller, faster, a little less accurate).
"""

from __future__ import annotations

import importlib.util
import logging
import threading
from pathlib import Path
from typing import Any

import numpy as np
from langchain_core.embeddings import Embeddings

from callable_agents.plugin import EmbeddingsRequest, EmbeddingsType, InvalidInput, TOKENIZER_NAME, hookimpl

DIMENSIONS = (64, 128, 256)
FULL_DIMENSION = 256
BATCH_SIZE = 128

_models: dict[int, Any] = {}
_lock = threading.Lock()


def _package_folder() -> Path:
    spec = importlib.util.find_spec("wordllama")
    if spec is None or not spec.submodule_search_locations:
        raise InvalidInput("embedding_model: the wordllama package is not installed")
    return Path(list(spec.submodule_search_locations)[0])


def load_model(dimension: int = FULL_DIMENSION) -> Any:
    """The WordLlama model truncated to ``dimension`` (loaded once per process)."""
    with _lock:
        if dimension not in _models:
            root = logging.getLogger()
            handlers, level = list(root.handlers), root.level
            from wordllama import WordLlama

            # wordllama's import calls logging.basicConfig(level=INFO), which would change
            # how the host application logs: put the root logger back as it was.
            for handler in root.handlers[:]:
                if handler not in handlers:
                    root.removeHandler(handler)
            root.setLevel(level)
            _models[dimension] = WordLlama.load(
                cache_dir=_package_folder(),
                disable_download=True,
                trunc_dim=None if dimension == FULL_DIMENSION else dimension,
            )
        return _models[dimension]


class WordLlamaEmbeddings(Embeddings):
    """LangChain ``Embeddings`` over a WordLlama model (average-pooled token embeddings).

    ``tokenizer_name`` tells the knowledge base this model uses the chunker's tokenizer, so
    it may hand over token ids (:meth:`embed_token_ids`) instead of text to tokenize again.
    """

    tokenizer_name = TOKENIZER_NAME

    def __init__(self, dimension: int = FULL_DIMENSION) -> None:
        if dimension not in DIMENSIONS:
            raise InvalidInput(
                f"embedding_model: wordllama dimensions are {', '.join(map(str, DIMENSIONS))}; got {dimension}"
            )
        self.dimension = dimension
        self.model = load_model(dimension)

    def embed_array(self, texts: list[str]) -> np.ndarray:
        """Unit vectors as one float32 array (rows in the order of ``texts``)."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        # Batches are padded to their longest text: embedding in length order wastes less.
        order = sorted(range(len(texts)), key=lambda index: len(texts[index]))
        vectors = np.asarray(
            self.model.embed([texts[i] for i in order], norm=True, batch_size=BATCH_SIZE), dtype=np.float32
        )
        result = np.empty_like(vectors)
        result[order] = vectors
        return result

    def embed_token_ids(self, sequences: list[list[int]]) -> np.ndarray:
        """Mean of the token vectors of each id sequence, unit length (what ``embed`` computes)."""
        table = self.model.embedding
        result = np.zeros((len(sequences), table.shape[1]), dtype=np.float32)
        for row, ids in enumerate(sequences):
            if ids:
                result[row] = table[np.clip(np.asarray(ids, dtype=np.int64), 0, table.shape[0] - 1)].mean(axis=0)
        norms = np.linalg.norm(result, axis=1, keepdims=True)
        np.divide(result, norms, out=result, where=norms > 0)
        return result

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.embed_array(texts).tolist()

    def embed_query(self, text: str) -> list[float]:
        return self.embed_array([text])[0].tolist()


def build(request: EmbeddingsRequest) -> WordLlamaEmbeddings:
    if not request.model:
        return WordLlamaEmbeddings()
    if not request.model.isdigit():
        raise InvalidInput(f"embedding_model: expected wordllama or wordllama:DIMENSION, got wordllama:{request.model}")
    return WordLlamaEmbeddings(int(request.model))


@hookimpl
def register_embeddings() -> list[EmbeddingsType]:
    return [
        EmbeddingsType(
            name="wordllama",
            description="WordLlama static embeddings, computed locally (no network, no key)",
            factory=build,
            local=True,
            default=True,
        )
    ]
