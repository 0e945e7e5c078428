"""Job kinds a plugin contributes (``register_job_kinds``): durable work with retries.

A plugin's tool asks for one through a :class:`~callable_agents.core.contracts.effects.QueueJob`
effect; the worker runs its handler, retrying on :class:`~callable_agents.core.jobs.RetryLater`
or any error with backoff, and stopping on :class:`~callable_agents.core.jobs.PermanentFailure`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from callable_agents.core.models import Job
    from callable_agents.core.runtime import Runtime

JobHandler = Callable[["Runtime", "Job"], Awaitable[None]]


@dataclass(frozen=True)
class JobKind:
    """A kind of job by name (the ``Job.kind`` column) and the handler that runs it."""

    name: str
    handler: JobHandler
