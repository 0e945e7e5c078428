"""The benchmarks still run: each script in bench/ on a tiny workload, as `make bench` would.

Not a measurement (figures are not asserted: benchmarks print them); a check that a change
to the code did not leave a benchmark broken, which nothing else would notice.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TINY = {
    "answers.py": [],
    "webhook.py": ["--requests", "30", "--rounds", "1", "--warmup", "5", "--e2e-messages", "5"],
    "scale.py": ["--requests", "30", "--rounds", "1", "--warmup", "5", "--messages", "5", "--e2e-warmup", "4", "--idle-messages", "2", "--events", "20"],
    "pipeline.py": ["--messages", "6", "--conversations", "2", "--chunks", "300", "--wait-messages", "6", "--wait-conversations", "2"],
    "web.py": ["--rounds", "1", "--levels", "1"],
    "whatsapp_burst.py": ["--customers", "10", "--parts", "2", "--limit", "20"],
    "inbox.py": ["--conversations", "200", "--messages", "2000", "--renders", "3", "--webhooks", "2", "--backends", "sqlite"],
    "knowledge.py": ["--sizes", "1000", "--queries", "10", "--ingest-chunks", "300", "--ingest-runs", "1"],
    "dashboard.py": ["--agents", "3", "--sources", "20", "--requests", "5"],
}


def test_every_bench_script_is_covered() -> None:
    assert {path.name for path in (ROOT / "bench").glob("*.py")} - {"processes.py", "workspace.py", "settings_line.py", "scripted_model.py"} == set(TINY)


# Starts seven processes (two webhook servers, then a server with one and with two workers).
SLOW = {"scale.py": 540}


@pytest.mark.parametrize(
    "script", [pytest.param(name, marks=pytest.mark.timeout(SLOW.get(name, 240) + 60)) for name in sorted(TINY)]
)
def test_bench_runs_on_a_tiny_workload(script: str) -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), *TINY[script]],
        cwd=ROOT, capture_output=True, text=True, timeout=SLOW.get(script, 240),
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    assert result.stdout.strip(), "a benchmark prints its figures"
