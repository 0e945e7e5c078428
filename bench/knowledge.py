"""Knowledge-base benchmark: ingestion throughput, retrieval quality and search latency.

Prints, on this machine:

1. chunks per second ingested with the local WordLlama embeddings, through the real
   pipeline (load -> chunk -> embed -> store in SQLite -> build and save the index), both per
   wall-clock second and per CPU second of the process (the machine may be shared);
2. hit@3 of dense-only, keyword-only and hybrid search on the labelled small-business set;
3. search latency p50/p95 at 1k, 10k and 100k passages for hybrid, FAISS-only (dense) and
   BM25-only (keyword): end to end through ``KnowledgeService.search`` (version check,
   ranking, passage texts from SQLite) and for the in-memory ranking alone.

Targets: >= 1,000 chunks/s ingest; hybrid p50 <= 10 ms at 100k passages.

    .venv/bin/python bench/knowledge.py [--sizes 1000,10000,100000] [--queries 300]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import random
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.settings_line import from_settings, settings_line  # noqa: E402
from callable_agents.core.bootstrap import running  # noqa: E402
from callable_agents.core.config import Settings  # noqa: E402
from callable_agents.core.db import migrate_sync  # noqa: E402
from callable_agents.core.knowledge import (  # noqa: E402
    KnowledgeService,
    add_source,
    create_knowledge_base,
    ingest_source,
)
from callable_agents.core.knowledge.search import rank_passages  # noqa: E402
from callable_agents.core.runtime import Runtime  # noqa: E402
from callable_agents.core.store.workspaces import create_workspace  # noqa: E402
from tests.knowledge.corpus import DOCUMENTS, QUESTIONS, hit  # noqa: E402

CHUNKS_PER_SECTION = 1  # one heading + a few sentences: about one passage each
SOURCE_SECTIONS = 5000
MODES = ("hybrid", "dense", "keyword")


def vocabulary() -> list[str]:
    words: dict[str, None] = {}
    for _kind, _title, content in DOCUMENTS:
        for word in content.replace("\n", " ").split():
            cleaned = word.strip(".,:;()\"'!?").lower()
            if cleaned.isalpha() and len(cleaned) > 2:
                words.setdefault(cleaned, None)
    return list(words)


class SyntheticSite:
    """Plausible business-site passages: sentences of the corpus's words, Zipf-weighted,
    with prices, times and product names, so every passage is different."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.words = vocabulary()
        self.weights = [1.0 / (rank + 1) ** 0.8 for rank in range(len(self.words))]

    def sentence(self) -> str:
        count = self.rng.randint(8, 18)
        words = self.rng.choices(self.words, self.weights, k=count)
        words.insert(self.rng.randrange(count), f"${self.rng.randint(5, 2500)}")
        if self.rng.random() < 0.3:
            words.insert(self.rng.randrange(count), f"model-{self.rng.randint(100, 99999)}")
        return " ".join(words).capitalize() + "."

    def section(self, number: int) -> str:
        heading = " ".join(self.rng.choices(self.words, self.weights, k=3)).title()
        body = " ".join(self.sentence() for _ in range(self.rng.randint(4, 7)))
        return f"## {heading} {number}\n\n{body}"

    def document(self, sections: int) -> bytes:
        return "\n\n".join(self.section(number) for number in range(sections)).encode()


def bench_settings(data_dir: Path) -> Settings:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=data_dir,
        database_url=f"sqlite:///{data_dir / 'bench.db'}",
        master_key=base64.b64encode(secrets.token_bytes(32)).decode(),
        disable_plugin_autoload=True,
        run_worker=False,
    )
    migrate_sync(settings.resolved_database_url)
    return settings


async def new_knowledge_base(runtime: Runtime, name: str) -> tuple[str, str]:
    async with runtime.db.session() as session:
        workspace = await create_workspace(session, runtime.vault, name)
        knowledge_base = await create_knowledge_base(session, workspace.id, "main", runtime=runtime)
    return workspace.id, knowledge_base.id


async def add_text(runtime: Runtime, workspace_id: str, knowledge_base_id: str, title: str, content: bytes) -> str:
    async with runtime.db.session() as session:
        source = await add_source(
            session,
            workspace_id,
            knowledge_base_id,
            runtime=runtime,
            kind="text",
            title=title,
            location=title,
            content=content,
        )
    return source.id


async def bench_ingest(runtime: Runtime, chunks: int, runs: int) -> None:
    """Ingest a fresh source ``runs`` times (a shared machine is noisy): every run, median, best."""
    workspace_id, knowledge_base_id = await new_knowledge_base(runtime, "ingest")
    warm = await add_text(runtime, workspace_id, knowledge_base_id, "warm-up", b"Loads the model and tokenizer first.")
    await ingest_source(runtime, workspace_id, warm)
    rates, cpu_rates = [], []
    for run in range(runs):
        content = SyntheticSite(run + 1).document(chunks // CHUNKS_PER_SECTION)
        source_id = await add_text(runtime, workspace_id, knowledge_base_id, f"site {run}", content)
        wall, cpu = time.perf_counter(), time.process_time()
        source = await ingest_source(runtime, workspace_id, source_id)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        assert source.status == "ready", source.error
        rates.append(source.chunk_count / wall)
        cpu_rates.append(source.chunk_count / cpu)
        print(
            f"ingest run {run + 1}: {source.chunk_count:,} passages ({len(content) / 1e6:.1f} MB of text)"
            f" in {wall:.2f} s"
            f" = {rates[-1]:,.0f} chunks/s ({cpu_rates[-1]:,.0f} per CPU-second)"
        )
    median = statistics.median(rates)
    print(
        f"ingest with local embeddings: median {median:,.0f} chunks/s, best {max(rates):,.0f} chunks/s "
        f"(median {statistics.median(cpu_rates):,.0f} per CPU-second); target >= 1,000: "
        + ("met" if median >= 1000 else "not met at the median on this machine now")
    )


async def bench_quality(runtime: Runtime) -> None:
    workspace_id, knowledge_base_id = await new_knowledge_base(runtime, "quality")
    for kind, title, content in DOCUMENTS:
        async with runtime.db.session() as session:
            source = await add_source(
                session,
                workspace_id,
                knowledge_base_id,
                runtime=runtime,
                kind=kind,
                title=title,
                location=title,
                content=content.encode(),
            )
        await ingest_source(runtime, workspace_id, source.id)
    service = KnowledgeService.of(runtime)
    rates = {}
    for mode in MODES:
        hits = 0
        for labelled in QUESTIONS:
            passages = await service.search(workspace_id, [knowledge_base_id], labelled.question, k=3, mode=mode)  # type: ignore[arg-type]
            hits += hit([passage.text for passage in passages], labelled.answer)
        rates[mode] = hits / len(QUESTIONS)
    print(
        f"hit@3 on {len(QUESTIONS)} labelled questions: "
        + ", ".join(f"{mode} {rate:.3f}" for mode, rate in rates.items())
    )


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered) * 1000, ordered[int(0.95 * (len(ordered) - 1))] * 1000


async def bench_latency(runtime: Runtime, size: int, queries: int) -> list[str]:
    workspace_id, knowledge_base_id = await new_knowledge_base(runtime, f"latency-{size}")
    site = SyntheticSite(size)
    remaining = size
    started = time.perf_counter()
    part = 0
    while remaining > 0:
        sections = min(SOURCE_SECTIONS, remaining)
        source_id = await add_text(runtime, workspace_id, knowledge_base_id, f"part {part}", site.document(sections))
        source = await ingest_source(runtime, workspace_id, source_id, update_index=False)
        assert source.status == "ready", source.error
        remaining -= source.chunk_count
        part += 1
    loaded = time.perf_counter() - started
    service = KnowledgeService.of(runtime)
    build = time.perf_counter()
    index = await service.refresh_index(workspace_id, knowledge_base_id)
    build = time.perf_counter() - build
    kind = "IVF (approximate)" if index.dense is not None and index.dense.approximate else "flat (exact)"
    print(
        f"{index.size:,} passages: ingested in {loaded:.1f} s, index ({kind} + BM25) built and saved in {build:.1f} s"
    )

    rng = random.Random(size)
    words = vocabulary()
    texts = [labelled.question for labelled in QUESTIONS] + [
        " ".join(rng.choices(words, k=rng.randint(3, 8))) for _ in range(queries)
    ]
    texts = texts[:queries]
    model = await service.models.get(workspace_id, "wordllama")
    rows = []
    for mode in MODES:
        for text in texts[:20]:  # warm-up
            await service.search(workspace_id, [knowledge_base_id], text, k=4, mode=mode)  # type: ignore[arg-type]
        end_to_end, in_memory = [], []
        for text in texts:
            began = time.perf_counter()
            await service.search(workspace_id, [knowledge_base_id], text, k=4, mode=mode)  # type: ignore[arg-type]
            end_to_end.append(time.perf_counter() - began)
            began = time.perf_counter()
            rank_passages([index], text, {"wordllama": model}, {}, 4, None, mode)  # type: ignore[arg-type]
            in_memory.append(time.perf_counter() - began)
        p50, p95 = percentiles(end_to_end)
        m50, m95 = percentiles(in_memory)
        rows.append(f"{index.size:>9,}  {mode:<8} {p50:8.2f} {p95:8.2f}   {m50:8.2f} {m95:8.2f}")
    return rows


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,10000,100000", help="Passage counts for the latency table.")
    parser.add_argument("--queries", type=int, default=300, help="Queries per size and mode.")
    parser.add_argument("--ingest-chunks", type=int, default=5000, help="Passages in each ingestion run.")
    parser.add_argument("--ingest-runs", type=int, default=3, help="Ingestion runs (median and best are reported).")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",") if size]
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} (1 min)")
    with tempfile.TemporaryDirectory(prefix="callable-bench-") as directory:
        settings = bench_settings(Path(directory))
        print(settings_line(from_settings(settings), reply_policy="not used (no conversations)"))
        async with running(settings) as runtime:
            await bench_ingest(runtime, args.ingest_chunks, args.ingest_runs)
            await bench_quality(runtime)
            table = []
            for size in sizes:
                table += await bench_latency(runtime, size, args.queries)
    print("\nsearch latency (ms)          end to end          in-memory ranking")
    print(" passages  mode          p50      p95        p50      p95")
    for row in table:
        print(row)
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    asyncio.run(main())
