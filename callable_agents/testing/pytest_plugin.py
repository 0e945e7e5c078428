"""The kit's pytest fixtures, registered by the ``pytest11`` entry point ``callable_agents``.

None is autouse and every name starts with ``callable_``, so installing ``callable-agents``
changes nothing in a project's tests until a test asks for one. This module imports only
pytest at load time; the runtime, the model stack and the fakes load inside the fixtures.
The async fixtures need ``pytest-asyncio`` (``pip install pytest-asyncio``).

The chain, each overridable by a fixture of the same name in your ``conftest.py``:

- ``callable_plugins_under_test`` — ``[(name, module_or_object)]`` loaded beside the built-ins;
  ``[]`` unless you override it (entry points are not read, so tests don't depend on what
  else is installed).
- ``callable_plugins`` — the loaded :class:`~callable_agents.core.plugins.Plugins`.
- ``callable_settings`` — settings on a migrated SQLite file in ``tmp_path``, a random master
  key; the developer's ``CALLABLE_*`` variables are unset for the test.
- ``callable_runtime`` — the open runtime (closed after the test).
- ``callable_fake_openai`` / ``callable_fake_twilio`` — the loopback fakes, started.
- ``callable_workspace`` — a workspace (:class:`~callable_agents.testing.agents.WorkspaceRef`).
- ``callable_model_settings`` — agent model settings using ``callable_fake_openai`` (override
  with ``{}`` for offline mode).
- ``callable_agent_spec`` — the agent as a workspace file declares it: add your tool here.
- ``callable_agent`` — that agent, created (:class:`~callable_agents.testing.agents.AgentRef`).
- ``callable_run_turn`` — ``await callable_run_turn("text")`` runs one turn through the real
  pipeline and returns a :class:`~callable_agents.testing.turns.TurnResult`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

import pytest

if TYPE_CHECKING:
    from callable_agents.core.config import Settings
    from callable_agents.core.plugins import Plugins
    from callable_agents.core.runtime import Runtime
    from callable_agents.testing.agents import AgentRef, WorkspaceRef
    from callable_agents.testing.openai_server import FakeOpenAI
    from callable_agents.testing.turns import TurnRunner
    from callable_agents.testing.twilio_server import FakeTwilio

FixtureFunction = TypeVar("FixtureFunction", bound=Callable[..., Any])


def _async_fixture(function: FixtureFunction) -> FixtureFunction:
    """``pytest_asyncio.fixture`` when pytest-asyncio is installed (in strict and auto mode
    alike); without it, a fixture that fails saying what to install. pytest-asyncio is not a
    dependency of ``callable-agents``: a project that never asks for these fixtures needn't
    have it."""
    try:
        import pytest_asyncio
    except ImportError:
        name = function.__name__

        def missing_pytest_asyncio() -> None:
            pytest.fail(f"{name} is an async fixture: install pytest-asyncio (pip install pytest-asyncio)", pytrace=False)

        missing_pytest_asyncio.__name__ = name
        return pytest.fixture(name=name)(missing_pytest_asyncio)  # type: ignore[return-value]
    return cast(FixtureFunction, pytest_asyncio.fixture(function))


@pytest.fixture
def callable_plugins_under_test() -> list[tuple[str, object]]:
    """The plugins your tests load beside the built-ins. Override it in your conftest::

        @pytest.fixture
        def callable_plugins_under_test():
            return [("pigeon", my_package.pigeon)]
    """
    return []


@pytest.fixture
def callable_plugins(callable_plugins_under_test: list[tuple[str, object]]) -> Plugins:
    """The built-in plugins and the ones under test, loaded and checked as at start-up."""
    from callable_agents.testing.runtime import load_test_plugins

    return load_test_plugins(*callable_plugins_under_test)


@pytest.fixture
def callable_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings on a migrated SQLite file in ``tmp_path / "callable"`` with a random master key;
    the ``CALLABLE_*`` environment variables are unset for the test."""
    from callable_agents.testing.runtime import runtime_settings
    from callable_agents.testing.settings import callable_environment_variables

    for name in callable_environment_variables():
        monkeypatch.delenv(name)
    return runtime_settings(tmp_path / "callable")


@_async_fixture
async def callable_runtime(callable_settings: Settings, callable_plugins: Plugins) -> AsyncIterator[Runtime]:
    """An open runtime on ``callable_settings`` with ``callable_plugins``."""
    from callable_agents.testing.runtime import open_test_runtime

    async with open_test_runtime(settings=callable_settings, plugins=callable_plugins) as runtime:
        yield runtime


@pytest.fixture
def callable_fake_openai() -> Iterator[FakeOpenAI]:
    """The loopback fake OpenAI server, requiring ``FAKE_OPENAI_KEY`` (what
    ``callable_model_settings`` connects). Script it: ``queue_tool_call``, ``queue_reply``,
    ``responder``; read ``chat_requests``."""
    from callable_agents.testing.agents import FAKE_OPENAI_KEY
    from callable_agents.testing.openai_server import FakeOpenAI

    with FakeOpenAI(api_key=FAKE_OPENAI_KEY) as fake:
        yield fake


@pytest.fixture
def callable_fake_twilio() -> Iterator[FakeTwilio]:
    """The loopback fake Twilio REST API; ``add_account`` before a client uses it."""
    from callable_agents.testing.twilio_server import FakeTwilio

    with FakeTwilio() as fake:
        yield fake


@_async_fixture
async def callable_workspace(callable_runtime: Runtime) -> WorkspaceRef:
    """A new workspace in ``callable_runtime``."""
    from callable_agents.testing.agents import create_test_workspace

    return await create_test_workspace(callable_runtime)


@_async_fixture
async def callable_model_settings(
    callable_runtime: Runtime, callable_workspace: WorkspaceRef, callable_fake_openai: FakeOpenAI
) -> dict[str, Any]:
    """Agent ``model_settings`` whose model is ``callable_fake_openai`` (connected as the
    workspace's ``openai`` integration). Override it to return ``{}`` for offline mode."""
    from callable_agents.testing.agents import connect_fake_openai

    return await connect_fake_openai(callable_runtime, callable_workspace, callable_fake_openai)


@pytest.fixture
def callable_agent_spec() -> dict[str, Any]:
    """The agent ``callable_agent`` creates, as a workspace file declares it. Override it to
    give the agent your tool::

        @pytest.fixture
        def callable_agent_spec():
            return {"name": "assistant", "tools": [{"type": "pigeon_post", "name": "send_pigeon", "config": {...}}]}

    ``model_settings`` defaults to ``callable_model_settings``.
    """
    from callable_agents.testing.agents import DEFAULT_AGENT_NAME, DEFAULT_SYSTEM_PROMPT

    return {"name": DEFAULT_AGENT_NAME, "system_prompt": DEFAULT_SYSTEM_PROMPT, "tools": []}


@_async_fixture
async def callable_agent(
    callable_runtime: Runtime,
    callable_workspace: WorkspaceRef,
    callable_agent_spec: dict[str, Any],
    callable_model_settings: dict[str, Any],
) -> AgentRef:
    """``callable_agent_spec`` created in ``callable_workspace`` (validated as ``callable apply``
    validates it: a config your tool's schema refuses fails here, naming the field)."""
    from callable_agents.testing.agents import create_test_agent

    spec = {"model_settings": callable_model_settings, **callable_agent_spec}
    return await create_test_agent(callable_runtime, callable_workspace, spec)


@pytest.fixture
def callable_run_turn(callable_runtime: Runtime, callable_agent: AgentRef) -> TurnRunner:
    """``await callable_run_turn("Are you open?")``: one turn of ``callable_agent`` through the
    real pipeline; returns the stored reply (``.reply``, ``.parts``, ``.messages``) and the
    turn's trace (``.trace``, ``.outcome``, ``.tool_rounds``)."""
    from callable_agents.testing.turns import TurnRunner

    return TurnRunner(callable_runtime, callable_agent)
