"""The conversation's job kinds, registered on a runtime in one call.

- the inbound queue's intake (queued webhook messages filed before each claim; live
  watchers such as the inbox are told);
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

    from callable_agents.core.conversation.streams import StreamHub

    async def file_and_tell_watchers(runtime: Runtime) -> int:
        filed = await file_queued(runtime)
        if filed:
            StreamHub.of(runtime).changed()  # the inbox shows the customer's message at once
        return filed

    register_intake(runtime, "inbound_queue", file_and_tell_watchers)
    register_handler(runtime, TURN_JOB, observed_turn_job(run_turn))
    register_handler(runtime, SEND_JOB, send_message)
    register_job_kinds(runtime, runtime.plugins.job_kinds)
