"""The checks a person's agent declaration goes through, for testing a plugin's config schema
where people meet it.

A tool's ``config_schema`` is checked in three places, and a plugin's tests may want to see
each error message as a person reads it:

- :func:`validate_agent_spec` (the admin API and the dashboard): raises :class:`SpecError`,
  whose ``problems`` name each field, e.g. ``tools[0].config.weekly.fri[0]: ...``;
- :func:`check_document` (``callable apply``'s check of a workspace YAML file, nothing
  written): raises :class:`ApplyError`, whose ``problems`` are ``(line, message)`` pairs;
- :meth:`AgentTool.validated_config`: the stored config validated again at each turn.

:class:`PluginError` is what loading refuses a plugin with (a clash, a bad hook), and
:class:`Plugins` the loaded set (``callable_plugins`` fixture, :func:`load_test_plugins`).
These names live in the core; the kit re-exports them so a plugin's tests import only
``callable_agents.testing`` and ``callable_agents.plugin``.
"""

from __future__ import annotations

from callable_agents.apply import ApplyError, check_document
from callable_agents.core.errors import PluginError
from callable_agents.core.plugins import Plugins
from callable_agents.core.store.agent_spec import SpecError, validate_agent_spec
from callable_agents.core.store.agents import AgentTool

__all__ = ["AgentTool", "ApplyError", "PluginError", "Plugins", "SpecError", "check_document", "validate_agent_spec"]
