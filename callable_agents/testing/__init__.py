"""The test kit for plugin authors (and for the project's own tests): real components, loopback
fakes at the network edge, nothing patched.

Installed with ``callable-agents``, it is a pytest plugin (the ``pytest11`` entry point
``callable_agents``), so its fixtures are there in any project that has the package: see
:mod:`.pytest_plugin` and docs/plugins.md ("Testing a plugin"). The modules:

- :mod:`.pytest_plugin`  the fixtures: ``callable_runtime``, ``callable_workspace``, ``callable_agent``,
                         ``callable_run_turn``, ``callable_fake_openai``, ``callable_fake_twilio``, ...
- :mod:`.settings`       settings for a test (own data dir, random master key, no autoload), a migrated SQLite file
- :mod:`.runtime`        the plugin under test loaded beside the built-ins; an open runtime
- :mod:`.agents`         a workspace, an agent with its tools, the fake OpenAI server as its model
- :mod:`.turns`          one turn through the real pipeline: the stored reply parts and the turn's trace
- :mod:`.tools`          a plugin's tool built as a turn builds it, to call directly
- :mod:`.checks`         the agent-spec and ``callable apply`` checks a tool's config meets
- :mod:`.openai_server`  ``FakeOpenAI``: the OpenAI HTTP API on 127.0.0.1, scripted replies and tool calls
- :mod:`.twilio_server`  ``FakeTwilio``: the Twilio REST API on 127.0.0.1 (messages, media, status callbacks)
- :mod:`.twilio_signing` ``X-Twilio-Signature`` as Twilio computes it; WhatsApp webhook forms; signed posts

The names below are importable from the package (``from callable_agents.testing import
FakeOpenAI, run_turn``); each loads its module on first use, so loading the pytest plugin
costs other projects' test runs nothing.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from callable_agents.testing.agents import (
        FAKE_OPENAI_KEY,
        AgentRef,
        WorkspaceRef,
        connect_fake_openai,
        create_test_agent,
        create_test_workspace,
    )
    from callable_agents.testing.checks import (
        AgentTool,
        ApplyError,
        PluginError,
        Plugins,
        SpecError,
        check_document,
        validate_agent_spec,
    )
    from callable_agents.testing.openai_server import (
        FakeOpenAI,
        ScriptedError,
        ScriptedReply,
        ScriptedToolCall,
        last_tool_result,
        last_user_message,
        message_text,
        system_prompt,
    )
    from callable_agents.testing.runtime import load_test_plugins, open_test_runtime, runtime_settings
    from callable_agents.testing.settings import make_settings, migrated_sqlite_file, new_master_key
    from callable_agents.testing.tools import build_test_tool, call_tool
    from callable_agents.testing.turns import StoredReply, TurnResult, TurnRunner, run_turn
    from callable_agents.testing.twilio_server import FakeTwilio
    from callable_agents.testing.twilio_signing import (
        compute_signature,
        inbound_params,
        new_message_sid,
        post_signed_webhook,
        signed_form,
        signed_headers,
    )

_EXPORTS: dict[str, str] = {
    **dict.fromkeys(
        ["FAKE_OPENAI_KEY", "AgentRef", "WorkspaceRef", "connect_fake_openai", "create_test_agent", "create_test_workspace"],
        "agents",
    ),
    **dict.fromkeys(
        ["AgentTool", "ApplyError", "PluginError", "Plugins", "SpecError", "check_document", "validate_agent_spec"], "checks"
    ),
    **dict.fromkeys(
        [
            "FakeOpenAI", "ScriptedError", "ScriptedReply", "ScriptedToolCall",
            "last_tool_result", "last_user_message", "message_text", "system_prompt",
        ],
        "openai_server",
    ),
    **dict.fromkeys(["load_test_plugins", "open_test_runtime", "runtime_settings"], "runtime"),
    **dict.fromkeys(["make_settings", "migrated_sqlite_file", "new_master_key"], "settings"),
    **dict.fromkeys(["build_test_tool", "call_tool"], "tools"),
    **dict.fromkeys(["StoredReply", "TurnResult", "TurnRunner", "run_turn"], "turns"),
    "FakeTwilio": "twilio_server",
    **dict.fromkeys(
        ["compute_signature", "inbound_params", "new_message_sid", "post_signed_webhook", "signed_form", "signed_headers"],
        "twilio_signing",
    ),
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # looked up once
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
