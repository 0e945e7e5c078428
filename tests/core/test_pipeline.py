"""The chat pipeline end to end through the real worker, graph and checkpointer."""

from __future__ import annotations

import pytest

from callable_agents.core.runtime import Runtime
from callable_agents.core.bootstrap import close_runtime, open_runtime
from tests.conftest import make_settings
from tests.core.pipeline_helpers import drain, make_agent_channel, outbound, say
from callable_agents.testing.openai_server import FakeOpenAI


@pytest.fixture
async def fast_runtime(tmp_path):  # type: ignore[no-untyped-def]
    settings = make_settings(tmp_path / "data")
    runtime = await open_runtime(settings, migrate=True)
    try:
        yield runtime
    finally:
        await close_runtime(runtime)


async def test_offline_agent_without_knowledge_says_it_does_not_know(fast_runtime: Runtime) -> None:
    _agent, channel = await make_agent_channel(fast_runtime)
    accepted = await say(fast_runtime, channel, "Do you sell bicycles?")
    await drain(fast_runtime)
    replies = await outbound(fast_runtime, accepted.conversation_id)
    assert [r.author for r in replies] == ["agent"]
    assert "I don't know" in replies[0].text and "person" in replies[0].text
    assert replies[0].status == "delivered"


async def test_duplicate_provider_id_is_answered_once(fast_runtime: Runtime) -> None:
    _agent, channel = await make_agent_channel(fast_runtime)
    first = await say(fast_runtime, channel, "hello?", sid="SM1")
    again = await say(fast_runtime, channel, "hello?", sid="SM1")
    assert again.duplicate and again.message_id == first.message_id
    await drain(fast_runtime)
    assert len(await outbound(fast_runtime, first.conversation_id)) == 1


async def test_model_answer_and_provider_failure_fallback(fast_runtime: Runtime) -> None:
    with FakeOpenAI() as fake:
        import os

        os.environ["OPENAI_API_KEY"] = "sk-test-env"
        try:
            _agent, channel = await make_agent_channel(
                fast_runtime,
                model_settings={"model": "gpt-test", "max_retries": 0, "timeout": 5},
            )
            # the base URL comes from an integration normally; for this test the env key and a base URL
            os.environ["OPENAI_BASE_URL"] = fake.base_url
            fake.queue_reply("We open at **7:00** every weekday.")
            accepted = await say(fast_runtime, channel, "When do you open?")
            await drain(fast_runtime)
            fake.queue_error(500)
            await say(fast_runtime, channel, "And on Sunday?")
            await drain(fast_runtime)
        finally:
            os.environ.pop("OPENAI_API_KEY", None)
            os.environ.pop("OPENAI_BASE_URL", None)
        replies = await outbound(fast_runtime, accepted.conversation_id)
        assert [r.text for r in replies] == [
            "We open at **7:00** every weekday.",
            "Sorry, something went wrong on our side. Please try again.",
        ]
        first_request = fake.chat_requests[0]
        assert "Bella's Bakery" in first_request.system_prompt
        assert first_request.last_user_message == "When do you open?"


async def test_a_dead_workers_job_is_reclaimed_when_its_lease_expires(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import asyncio

    from callable_agents.core.jobs import claim

    settings = make_settings(tmp_path / "data", job_lease_seconds=2)
    runtime = await open_runtime(settings, migrate=True)
    try:
        _agent, channel = await make_agent_channel(runtime)
        accepted = await say(runtime, channel, "hello")
        dead = await claim(runtime, "worker-that-dies")
        assert dead is not None and dead.kind == "turn"
        assert await claim(runtime, "other-worker") is None  # leased: nobody else takes it
        await asyncio.sleep(2.2)
        await drain(runtime)  # the lease expired: this worker reclaims and answers it
        assert len(await outbound(runtime, accepted.conversation_id)) == 1
    finally:
        await close_runtime(runtime)


async def test_a_stopped_worker_gives_its_running_jobs_back(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A server shutting down cancels the jobs still running after the grace period; they are
    pending again at once (not after their lease), their attempt not counted."""
    import asyncio

    from sqlalchemy import select

    from callable_agents.core.jobs import JobHandlers, Worker, claim, enqueue
    from callable_agents.core.models import Job

    settings = make_settings(tmp_path / "data", job_lease_seconds=60)
    runtime = await open_runtime(settings, migrate=True)
    try:
        started = asyncio.Event()

        async def never_finishes(runtime: Runtime, job: Job) -> None:
            started.set()
            await asyncio.Event().wait()

        JobHandlers.of(runtime).handlers["stuck"] = never_finishes
        _agent, channel = await make_agent_channel(runtime)
        async with runtime.db.session() as session:
            enqueue(session, channel.workspace_id, "stuck", {}, lane="lane-1")
        worker = Worker(runtime)
        running = asyncio.create_task(worker.run())
        await asyncio.wait_for(started.wait(), 10)
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        await worker.stop(grace_seconds=0.2)

        async with runtime.db.session() as session:
            job = await session.scalar(select(Job).where(Job.kind == "stuck"))
        assert job is not None
        assert (job.status, job.attempts, job.locked_by, job.lease_until) == ("pending", 0, None, None)
        again = await claim(runtime, "the-next-worker")
        assert again is not None and again.id == job.id  # at once, not after the 60 s lease
    finally:
        await close_runtime(runtime)
