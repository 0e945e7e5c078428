"""Dense vector search with FAISS over normalised embeddings (inner product = cosine).

Small knowledge bases get an exact index (``IndexFlatIP``); above
:data:`APPROXIMATE_THRESHOLD` vectors an inverted-file index (``IndexIVFFlat``, about
4·√n lists, probing 1/16 of them) keeps a query well under a millisecond at 100k passages.
Vectors are numbered by position (0..n-1); the caller maps positions to chunk ids.

A single query is searched on one OpenMP thread: FAISS's thread start-up and spin costs
more than the work itself for one vector, and several threads fighting over two cores made
one query 10x slower in measurements.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

APPROXIMATE_THRESHOLD = 20_000
TRAINING_POINTS_PER_LIST = 40
# Below this many allowed vectors, a filtered search scans them exactly instead of asking
# the approximate index, whose probed lists could miss a small subset altogether.
EXACT_FILTER_LIMIT = 20_000


@dataclass
class DenseIndex:
    index: faiss.Index
    dimension: int

    @property
    def size(self) -> int:
        return int(self.index.ntotal)

    @property
    def approximate(self) -> bool:
        return not isinstance(self.index, faiss.IndexFlat)

    @classmethod
    def build(cls, vectors: np.ndarray, *, approximate_threshold: int = APPROXIMATE_THRESHOLD) -> DenseIndex:
        """Index normalised float32 ``vectors`` (n x d), exact or approximate by size."""
        count, dimension = vectors.shape
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if count <= approximate_threshold:
            index: faiss.Index = faiss.IndexFlatIP(dimension)
        else:
            lists = int(4 * np.sqrt(count))
            quantizer = faiss.IndexFlatIP(dimension)
            index = faiss.IndexIVFFlat(quantizer, dimension, lists, faiss.METRIC_INNER_PRODUCT)
            sample_size = min(count, lists * TRAINING_POINTS_PER_LIST)
            sample = vectors[np.random.default_rng(0).choice(count, sample_size, replace=False)]
            index.train(sample)
            index.nprobe = max(8, lists // 16)
            index.make_direct_map()  # lets filtered searches reconstruct a subset exactly
        if count:
            index.add(vectors)
        return cls(index=index, dimension=dimension)

    def search(self, query: np.ndarray, top_n: int, allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Positions and cosine scores of the ``top_n`` nearest vectors, best first.

        ``allowed`` is a boolean mask over positions (e.g. the chosen sources).
        """
        if self.size == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        faiss.omp_set_num_threads(1)
        query = np.ascontiguousarray(query.reshape(1, -1), dtype=np.float32)
        if allowed is None:
            scores, positions = self.index.search(query, min(top_n, self.size))
        else:
            chosen = np.flatnonzero(allowed)
            if chosen.size == 0:
                return np.zeros(0, np.int64), np.zeros(0, np.float32)
            if self.approximate and chosen.size <= EXACT_FILTER_LIMIT:
                return self._scan(query[0], chosen, top_n)
            selector = faiss.IDSelectorBatch(chosen.astype(np.int64))
            # faiss's SWIG parameter classes take their fields as keywords, which its type
            # hints don't declare; an approximate index is an IndexIVF, which has nprobe.
            if self.approximate:
                params: faiss.SearchParameters = faiss.SearchParametersIVF(sel=selector, nprobe=self.index.nprobe)  # type: ignore[call-arg,attr-defined]
            else:
                params = faiss.SearchParameters(sel=selector)  # type: ignore[call-arg]
            scores, positions = self.index.search(query, min(top_n, int(chosen.size)), params=params)
        keep = positions[0] >= 0
        return positions[0][keep].astype(np.int64), scores[0][keep]

    def _scan(self, query: np.ndarray, chosen: np.ndarray, top_n: int) -> tuple[np.ndarray, np.ndarray]:
        vectors = self.index.reconstruct_batch(chosen.astype(np.int64))
        scores = vectors @ query
        if scores.size > top_n:
            best = np.argpartition(-scores, top_n - 1)[:top_n]
        else:
            best = np.arange(scores.size)
        order = best[np.argsort(-scores[best], kind="stable")]
        return chosen[order].astype(np.int64), scores[order].astype(np.float32)

    def save(self, path: Path) -> None:
        faiss.write_index(self.index, str(path))

    @classmethod
    def load(cls, path: Path) -> DenseIndex:
        index = faiss.read_index(str(path))
        return cls(index=index, dimension=int(index.d))
