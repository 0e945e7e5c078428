"""The conversation's job kinds, registered on a runtime in one call.

- the inbound queue's intake (queued webhook messages filed before each claim);
- ``turn``: :func:`~.turn.run.run_turn`;
- ``send``: :func:`~.outbound.send.send_message`;
- the kinds plugins contribute through ``register_job_kinds`` (e.g. a tool's signed webhook).
"""

from __future__ import annotations

from callable_agents.core.runtime import Runtime


def register_conversation_jobs(runtime: Runtime) -> None:
    # Imported when called, not with this module: the turn brings the model stack, which a
    # command that merely imports its way past here should not pay for.
    from callable_agents.core.conversation.inbound.filing import file_queued
    from callable_agents.core.conversation.inbound.sql import TURN_JOB
    from callable_agents.core.conversation.outbound.send import SEND_JOB, send_message
    from callable_agents.core.conversation.turn.run import run_turn
    from callable_agents.core.jobs import register_handler, register_intake, register_job_kinds
    from callable_agents.core.observability.pipeline import observed_turn_job

    register_intake(runtime, "inbound_queue", file_queued)
    register_handler(runtime, TURN_JOB, observed_turn_job(run_turn))
    register_handler(runtime, SEND_JOB, send_message)
    register_job_kinds(runtime, runtime.plugins.job_kinds)
