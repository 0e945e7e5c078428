"""Benchmark: the quality of the agent's answers over the demo workspace, offline.

    .venv/bin/python bench/answers.py [--questions bench/answers.yaml]

Asks every labelled question of ``bench/answers.yaml`` of the demo agent (the packaged demo
file, applied to a fresh SQLite database, the offline model: no network), each in its own
conversation, through the real pipeline (the terminal channel `callable chat` uses), and
prints:

- expected fact present: answerable questions whose answer contains the expected fact;
- complete sentences: answers whose every sentence starts and ends as a sentence does;
- citation precision: cited passages that are the labelled source / all cited passages;
- citation recall: answerable questions whose labelled source is cited;
- correct "not found": unanswerable questions answered that it was not found;
- routed to a person: person requests handed off.

Targets (issue 16, offline): 100% complete sentences, precision >= 0.95, expected fact >=
0.9, correct "not found" >= 0.9. Offline only: with the scripted fake model the figures would
measure our marker handling (tests/core/test_citing.py does), not a model's answers.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from callable_agents.core.conversation.turn.offline import OFFLINE_LABEL  # noqa: E402
from callable_agents.core.models import Agent  # noqa: E402
from callable_agents.demo import apply_demo  # noqa: E402
from callable_agents.testing import AgentRef, open_test_runtime, run_turn, runtime_settings  # noqa: E402
from bench.settings_line import from_settings, settings_line  # noqa: E402

SENTENCE = re.compile(r"^[A-Z0-9£$€\"“(].*[.!?]$", re.S)


def is_complete(text: str) -> bool:
    """Whether every paragraph of ``text`` reads as whole sentences (no cut-off fragment)."""
    body = text.replace(f"_{OFFLINE_LABEL}_", "").strip()
    paragraphs = [paragraph.strip() for paragraph in body.split("\n\n") if paragraph.strip()]
    return bool(paragraphs) and all(SENTENCE.match(paragraph) for paragraph in paragraphs)


async def ask_all(questions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory() as folder:
        settings = runtime_settings(Path(folder), public_base_url="http://127.0.0.1:8000")
        print(settings_line(from_settings(settings), note="each question a turn of its own conversation"))
        async with open_test_runtime(settings=settings) as runtime:
            await apply_demo(runtime)
            from sqlalchemy import select

            async with runtime.db.sessions() as session:
                agent = await session.scalar(select(Agent).where(Agent.name == "assistant"))
            assert agent is not None
            ref = AgentRef(id=agent.id, workspace_id=agent.workspace_id, name=agent.name)
            results = []
            for number, item in enumerate(questions):
                turn = await run_turn(runtime, ref, item["q"], user=f"bench-{number}")
                last = turn.messages[-1] if turn.messages else None
                results.append(
                    {
                        **item,
                        "reply": turn.reply,
                        "outcome": turn.outcome,
                        "cited": [c.get("title") for c in (last.meta.get("citations") if last else None) or []],
                    }
                )
            return results


def report(results: list[dict[str, Any]]) -> dict[str, float]:
    answerable = [r for r in results if r["kind"] == "answerable"]
    unanswerable = [r for r in results if r["kind"] == "unanswerable"]
    person = [r for r in results if r["kind"] == "person"]
    answered = [r for r in results if r["outcome"] in ("offline", "answered")]
    fact = sum(any(e.lower() in r["reply"].lower() for e in r["expect"]) for r in answerable) / max(1, len(answerable))
    complete = sum(is_complete(r["reply"]) for r in answered) / max(1, len(answered))
    cited = [(r, title) for r in answered for title in r["cited"]]
    precision = sum(r.get("source") == title for r, title in cited) / max(1, len(cited))
    recall = sum(r["source"] in r["cited"] for r in answerable) / max(1, len(answerable))
    not_found = sum(r["outcome"] == "no_answer" for r in unanswerable) / max(1, len(unanswerable))
    routed = sum(r["outcome"] == "handed_off" for r in person) / max(1, len(person))
    return {
        "expected fact present": fact,
        "complete sentences": complete,
        "citation precision": precision,
        "citation recall": recall,
        'correct "not found"': not_found,
        "routed to a person": routed,
    }


TARGETS = {"expected fact present": 0.9, "complete sentences": 1.0, "citation precision": 0.95, 'correct "not found"': 0.9}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--questions", default=str(ROOT / "bench" / "answers.yaml"))
    parser.add_argument("--show", action="store_true", help="print every question and its answer")
    args = parser.parse_args()
    questions = yaml.safe_load(Path(args.questions).read_text())["questions"]
    started = time.perf_counter()
    results = asyncio.run(ask_all(questions))
    elapsed = time.perf_counter() - started
    counts = {kind: sum(q["kind"] == kind for q in questions) for kind in ("answerable", "unanswerable", "person")}
    print(f"Answer benchmark: the demo workspace, offline model, {len(questions)} questions {counts}, {elapsed:.1f} s")
    if args.show:
        for r in results:
            fact = r["kind"] != "answerable" or any(e.lower() in r["reply"].lower() for e in r["expect"])
            mark = "ok " if fact and (r["kind"] != "answerable" or r["source"] in r["cited"]) else "BAD"
            print(f"{mark} [{r['kind']}/{r['outcome']}] {r['q']} -> {r['reply'][:160]!r} cited {r['cited']}")
    for name, value in report(results).items():
        target = TARGETS.get(name)
        verdict = "" if target is None else f"   target >= {target:.2f}: {'met' if value >= target else 'NOT met'}"
        print(f"{name:<24} {value:6.2f}{verdict}")


if __name__ == "__main__":
    main()
