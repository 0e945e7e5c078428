"""One knowledge base's search structures: FAISS vectors + BM25 terms + position -> chunk id.

A :class:`KnowledgeIndex` is a cache built from database rows at one ``index_version`` of
the knowledge base; the database stays the source of truth. Built indexes are saved under
``<data_dir>/indexes/<knowledge base id>/`` (a ``.faiss`` file and an ``.npz`` with the
keyword index and the id map, both written atomically), so another process sharing the
database loads them instead of rebuilding, and a restart starts warm.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from callable_agents.core.knowledge.dense import DenseIndex
from callable_agents.core.knowledge.keyword import KeywordIndex

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
ABANDONED_TEMP_SECONDS = 3600
_FILE_NAME = re.compile(r"^v(\d+)-([0-9a-f]{12})\.(faiss|npz)$")


@dataclass(frozen=True)
class IndexRows:
    """The rows an index is built from, in chunk-id order."""

    chunk_ids: np.ndarray  # int64
    source_ids: list[str]  # per row
    texts: list[str]  # indexed text (title + passage) per row
    vectors: np.ndarray  # float32, n x d, normalised


@dataclass
class KnowledgeIndex:
    knowledge_base_id: str
    version: int
    embedding_model: str
    dense: DenseIndex | None  # None when the knowledge base has no passages yet
    keyword: KeywordIndex
    chunk_ids: np.ndarray  # int64, position -> chunk id
    source_of: np.ndarray  # int32, position -> index into ``sources``
    sources: list[str]
    _source_numbers: dict[str, int] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._source_numbers = {source_id: number for number, source_id in enumerate(self.sources)}

    @property
    def size(self) -> int:
        return int(self.chunk_ids.size)

    @classmethod
    def build(cls, knowledge_base_id: str, version: int, embedding_model: str, rows: IndexRows) -> KnowledgeIndex:
        sources = sorted(set(rows.source_ids))
        numbers = {source_id: number for number, source_id in enumerate(sources)}
        dense = DenseIndex.build(rows.vectors) if rows.vectors.size else None
        return cls(
            knowledge_base_id=knowledge_base_id,
            version=version,
            embedding_model=embedding_model,
            dense=dense,
            keyword=KeywordIndex.build(rows.texts),
            chunk_ids=rows.chunk_ids.astype(np.int64),
            source_of=np.asarray([numbers[source_id] for source_id in rows.source_ids], dtype=np.int32),
            sources=sources,
        )

    def allowed(self, source_ids: Sequence[str] | None) -> np.ndarray | None:
        """A position mask for ``source_ids`` (None = every passage)."""
        if source_ids is None:
            return None
        numbers = [self._source_numbers[s] for s in source_ids if s in self._source_numbers]
        return np.isin(self.source_of, np.asarray(numbers, dtype=np.int32))

    def dense_search(
        self, query_vector: np.ndarray, top_n: int, allowed: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Chunk ids and cosine scores, best first."""
        if self.dense is None:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        positions, scores = self.dense.search(query_vector, top_n, allowed)
        return self.chunk_ids[positions], scores

    def keyword_search(self, query: str, top_n: int, allowed: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """Chunk ids and BM25 scores, best first."""
        positions, scores = self.keyword.search(query, top_n, allowed)
        return self.chunk_ids[positions], scores

    # ------------------------------------------------------------------ persistence

    @staticmethod
    def model_tag(embedding_model: str) -> str:
        return hashlib.sha256(embedding_model.encode()).hexdigest()[:12]

    @staticmethod
    def directory(index_root: Path, knowledge_base_id: str) -> Path:
        return index_root / knowledge_base_id

    @classmethod
    def paths(cls, index_root: Path, knowledge_base_id: str, version: int, embedding_model: str) -> tuple[Path, Path]:
        stem = f"v{version}-{cls.model_tag(embedding_model)}"
        directory = cls.directory(index_root, knowledge_base_id)
        return directory / f"{stem}.faiss", directory / f"{stem}.npz"

    def save(self, index_root: Path) -> None:
        """Write both files atomically (temporary name, then rename); drop older versions."""
        faiss_path, arrays_path = self.paths(index_root, self.knowledge_base_id, self.version, self.embedding_model)
        faiss_path.parent.mkdir(parents=True, exist_ok=True)
        token = secrets.token_hex(4)
        header = {
            "format": FORMAT_VERSION,
            "knowledge_base_id": self.knowledge_base_id,
            "version": self.version,
            "embedding_model": self.embedding_model,
        }
        arrays = {
            "header": np.asarray(json.dumps(header)),
            "chunk_ids": self.chunk_ids,
            "source_of": self.source_of,
            "sources": np.asarray(self.sources, dtype=str) if self.sources else np.zeros(0, dtype="<U1"),
            **self.keyword.to_arrays(),
        }
        arrays_tmp = arrays_path.with_name(f".{arrays_path.name}.{token}.tmp")
        with arrays_tmp.open("wb") as handle:
            # numpy's stub types **kwds as arrays but also has a bool allow_pickle keyword.
            # numpy's stub types savez's **kwds as bool (for allow_pickle), not as the arrays it takes.
            np.savez(handle, **arrays)  # type: ignore[arg-type]
        if self.dense is not None:
            faiss_tmp = faiss_path.with_name(f".{faiss_path.name}.{token}.tmp")
            self.dense.save(faiss_tmp)
            os.replace(faiss_tmp, faiss_path)
        # The .npz goes last: its presence means the pair is complete.
        os.replace(arrays_tmp, arrays_path)
        self.remove_older(index_root)

    @classmethod
    def load(
        cls, index_root: Path, knowledge_base_id: str, version: int, embedding_model: str
    ) -> KnowledgeIndex | None:
        """The saved index for exactly this version and model, or None."""
        faiss_path, arrays_path = cls.paths(index_root, knowledge_base_id, version, embedding_model)
        if not arrays_path.exists():
            return None
        try:
            with np.load(arrays_path, allow_pickle=False) as loaded:
                arrays = {name: loaded[name] for name in loaded.files}
            header = json.loads(str(arrays["header"]))
            if header != {
                "format": FORMAT_VERSION,
                "knowledge_base_id": knowledge_base_id,
                "version": version,
                "embedding_model": embedding_model,
            }:
                return None
            chunk_ids = arrays["chunk_ids"]
            dense = DenseIndex.load(faiss_path) if chunk_ids.size else None
            if dense is not None and dense.size != chunk_ids.size:
                return None
            return cls(
                knowledge_base_id=knowledge_base_id,
                version=version,
                embedding_model=embedding_model,
                dense=dense,
                keyword=KeywordIndex.from_arrays(arrays),
                chunk_ids=chunk_ids,
                source_of=arrays["source_of"],
                sources=arrays["sources"].tolist(),
            )
        except Exception:  # a damaged cache file is rebuilt from the database, never trusted
            log.warning("ignoring unreadable index cache %s", arrays_path, exc_info=True)
            return None

    def remove_older(self, index_root: Path) -> None:
        """Drop saved versions older than this one, and temporary files a crash left behind."""
        directory = self.directory(index_root, self.knowledge_base_id)
        abandoned_before = time.time() - ABANDONED_TEMP_SECONDS
        for path in directory.iterdir():
            match = _FILE_NAME.match(path.name)
            if match and int(match.group(1)) < self.version:
                path.unlink(missing_ok=True)
            elif path.name.endswith(".tmp") and _modified(path) < abandoned_before:
                path.unlink(missing_ok=True)


def _modified(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return float("inf")


def remove_saved(index_root: Path, knowledge_base_id: str) -> None:
    """Delete every saved index of a knowledge base (it was deleted)."""
    directory = KnowledgeIndex.directory(index_root, knowledge_base_id)
    if not directory.is_dir():
        return
    for path in directory.iterdir():
        path.unlink(missing_ok=True)
    directory.rmdir()
