"""The search structures on their own: FAISS exact/approximate, BM25, fusion, saved copies."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from callable_agents.core.knowledge.dense import DenseIndex
from callable_agents.core.knowledge.embeddings import normalise_vectors
from callable_agents.core.knowledge.index import IndexRows, KnowledgeIndex
from callable_agents.core.knowledge.keyword import KeywordIndex, terms
from callable_agents.core.knowledge.search import reciprocal_rank_fusion


def clustered_vectors(count: int, dimension: int = 32, seed: int = 7) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(40, dimension))
    return normalise_vectors(centres[rng.integers(0, 40, count)] + 0.3 * rng.normal(size=(count, dimension)))


def test_exact_index_finds_the_true_nearest_neighbours() -> None:
    vectors = clustered_vectors(500)
    index = DenseIndex.build(vectors)
    assert not index.approximate
    query = vectors[123]
    positions, scores = index.search(query, 5)
    truth = np.argsort(-(vectors @ query))[:5]
    assert positions.tolist() == truth.tolist()
    assert abs(float(scores[0]) - 1.0) < 1e-5


def test_approximate_index_above_the_threshold_keeps_good_recall_and_filters_exactly(tmp_path: Path) -> None:
    vectors = clustered_vectors(3000)
    index = DenseIndex.build(vectors, approximate_threshold=1000)
    assert index.approximate
    recalls = []
    for query_position in range(0, 3000, 150):
        positions, _ = index.search(vectors[query_position], 10)
        truth = set(np.argsort(-(vectors @ vectors[query_position]))[:10].tolist())
        recalls.append(len(truth & set(positions.tolist())) / 10)
    assert float(np.mean(recalls)) >= 0.9
    allowed = np.zeros(3000, dtype=bool)
    allowed[[5, 900, 2500]] = True
    positions, scores = index.search(vectors[900], 10, allowed)
    assert positions.tolist()[0] == 900 and set(positions.tolist()) == {5, 900, 2500}
    assert list(scores) == sorted(scores, reverse=True)
    index.save(tmp_path / "ivf.faiss")
    reloaded = DenseIndex.load(tmp_path / "ivf.faiss")
    assert reloaded.approximate and reloaded.search(vectors[900], 10, allowed)[0].tolist() == positions.tolist()


def test_keyword_index_ranks_by_bm25_with_stemming_and_stop_words() -> None:
    texts = [
        "Bike rentals: city bikes rent for $25 a day.",
        "We repair punctures while you wait.",
        "Rental bikes must be returned by 6pm. Late returns cost extra.",
        "Opening hours: weekdays 9 to 6.",
    ]
    index = KeywordIndex.build(texts)
    positions, scores = index.search("how much to rent a bike?", 10)
    assert positions.tolist()[:2] == [0, 2] and scores[0] > scores[1] > 0
    assert terms("What are the opening hours?") == ["open", "hour"]
    assert index.search("the and of", 5)[0].size == 0  # stop words only
    mask = np.array([False, False, True, True])
    assert index.search("rental bikes", 5, mask)[0].tolist() == [2]
    assert KeywordIndex.build([]).search("bike", 3)[0].size == 0


def test_reciprocal_rank_fusion_rewards_agreement() -> None:
    fused = reciprocal_rank_fusion([[1, 2, 3], [3, 1, 4]])
    assert [item.chunk_id for item in fused] == [1, 3, 2, 4]
    assert fused[0].score == 1 / 61 + 1 / 62


def test_saved_index_round_trip(tmp_path: Path) -> None:
    vectors = clustered_vectors(50)
    rows = IndexRows(
        chunk_ids=np.arange(100, 150, dtype=np.int64),
        source_ids=["a"] * 25 + ["b"] * 25,
        texts=[f"passage number {i} about bikes" for i in range(50)],
        vectors=vectors,
    )
    built = KnowledgeIndex.build("kb1", 7, "wordllama", rows)
    built.save(tmp_path)
    loaded = KnowledgeIndex.load(tmp_path, "kb1", 7, "wordllama")
    assert loaded is not None and loaded.sources == ["a", "b"]
    assert loaded.dense_search(vectors[30], 1, None)[0].tolist() == [130]
    assert loaded.keyword_search("number 12", 1, loaded.allowed(["a"]))[0].tolist() == [112]
    assert KnowledgeIndex.load(tmp_path, "kb1", 8, "wordllama") is None  # another version
    assert KnowledgeIndex.load(tmp_path, "kb1", 7, "openai") is None  # another model
    KnowledgeIndex.build("kb1", 8, "wordllama", rows).save(tmp_path)
    assert sorted(path.name.split("-")[0] for path in (tmp_path / "kb1").iterdir()) == ["v8", "v8"]
