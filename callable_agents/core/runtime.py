"""The running process's shared parts, handed to plugins and request handlers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from starlette.requests import HTTPConnection

    from callable_agents.core.config import Settings
    from callable_agents.core.db import Database
    from callable_agents.core.plugins import Plugins
    from callable_agents.core.store.vault import Vault


@dataclass
class Runtime:
    """Settings, database, vault and plugins of one process (server, worker or CLI).

    ``services`` holds long-lived helpers that parts create lazily and share (HTTP clients,
    the knowledge index cache, the pipeline), keyed by name; ``close`` callbacks run at
    shutdown.
    """

    settings: Settings
    db: Database
    vault: Vault
    plugins: Plugins
    services: dict[str, Any] = field(default_factory=dict)


def runtime_of(connection: HTTPConnection) -> Runtime:
    """The runtime of the app serving this request (set by the server's lifespan)."""
    runtime: Runtime = connection.app.state.runtime
    return runtime
