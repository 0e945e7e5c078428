"""Retrieval quality on a labelled set: hit@3 for dense-only, keyword-only and hybrid search.

The report is printed (``pytest -s`` shows it) and kept in the test's properties. Hybrid
must be at least as good as the better of the other two.
"""

from __future__ import annotations

import pytest

from tests.knowledge.conftest import KnowledgeEnv
from tests.knowledge.corpus import DOCUMENTS, QUESTIONS, hit

K = 3


async def test_hybrid_hit_at_3_is_at_least_the_better_of_dense_and_keyword(
    env: KnowledgeEnv, record_property: pytest.RecordProperty
) -> None:
    assert len(QUESTIONS) >= 30
    for kind, title, content in DOCUMENTS:
        source = await env.add_and_ingest(kind, title=title, location=title, content=content.encode())
        assert source.status == "ready", (title, source.error)

    hits: dict[str, int] = {}
    misses: dict[str, list[str]] = {}
    for mode in ("dense", "keyword", "hybrid"):
        hits[mode] = 0
        misses[mode] = []
        for labelled in QUESTIONS:
            passages = await env.search(labelled.question, k=K, mode=mode)  # type: ignore[arg-type]
            assert len(passages) <= K
            if hit([passage.text for passage in passages], labelled.answer):
                hits[mode] += 1
            else:
                misses[mode].append(labelled.question)

    rates = {mode: count / len(QUESTIONS) for mode, count in hits.items()}
    report = "  ".join(f"{mode} {rate:.3f}" for mode, rate in rates.items())
    print(f"\nhit@{K} over {len(QUESTIONS)} questions: {report}")
    for mode, missed in misses.items():
        print(f"  {mode} missed: {missed}")
    for mode, rate in rates.items():
        record_property(f"hit@{K}_{mode}", rate)

    assert rates["hybrid"] >= max(rates["dense"], rates["keyword"]), report
    assert rates["hybrid"] >= 0.85, report  # a floor, so a broken ranker can't pass by being equally bad
