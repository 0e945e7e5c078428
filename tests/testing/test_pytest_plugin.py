"""The kit as a pytest plugin: registered by the package's entry point, cheap to load, and
invisible to a project's tests until one asks for a fixture (none is autouse; every name is
``callable_``-prefixed, so none shadows a project's own)."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY_MODULES = ("sqlalchemy", "langchain_core", "langgraph", "twilio", "openai", "faiss", "numpy", "pydantic")
PLUGIN_MODULE = "callable_agents.testing.pytest_plugin"


def test_the_package_registers_the_kit_as_a_pytest_plugin(request: pytest.FixtureRequest) -> None:
    (entry_point,) = [ep for ep in importlib.metadata.entry_points(group="pytest11") if ep.name == "callable_agents"]
    assert entry_point.value == PLUGIN_MODULE
    assert request.config.pluginmanager.has_plugin("callable_agents")


def test_loading_the_plugin_imports_nothing_heavy() -> None:
    code = f"import sys, {PLUGIN_MODULE}; print(' '.join(m for m in {HEAVY_MODULES!r} if m in sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert loaded == [], f"loading the pytest plugin imported {loaded}: import them inside the fixtures"


def test_another_projects_tests_see_no_kit_fixture_until_they_ask(tmp_path: Path) -> None:
    (tmp_path / "test_other_project.py").write_text(
        "import sys\n"
        "def test_untouched(request):\n"
        "    assert [name for name in request.fixturenames if name.startswith('callable_')] == []\n"
        f"    assert [m for m in {HEAVY_MODULES[:5]!r} if m in sys.modules] == []\n",
        encoding="utf-8",
    )
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly", "--fixtures", "-v", str(tmp_path)],
        capture_output=True, text=True, cwd=tmp_path,
    )
    kit_fixtures = [line.split()[0] for line in run.stdout.splitlines() if "callable_agents/testing/pytest_plugin.py" in line and " -- " in line]
    assert "callable_runtime" in kit_fixtures and "callable_run_turn" in kit_fixtures
    assert [name for name in kit_fixtures if not name.startswith("callable_")] == []

    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly", str(tmp_path)],
        capture_output=True, text=True, cwd=tmp_path,
    )
    assert run.returncode == 0, run.stdout + run.stderr
