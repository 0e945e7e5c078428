"""Fair scheduling: one workspace's hung model cannot hold another workspace's turns.

Ten visitors of workspace A wait on a model that answers after 20 s; workspace B's offline
agent must still answer its customers at once. Real worker, real SQLite file, the fake
OpenAI server holding A's responses back.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from pathlib import Path

from sqlalchemy import select

from callable_agents.core.bootstrap import close_runtime, open_runtime
from callable_agents.core.jobs import Worker, default_workspace_share
from callable_agents.core.models import Workspace
from callable_agents.core.store.integrations import connect_integration
from tests.conftest import make_settings
from tests.core.pipeline_helpers import make_agent_channel, outbound, say
from callable_agents.testing.openai_server import FakeOpenAI

HUNG_SECONDS = 20.0


async def _replied(runtime: object, conversation_id: str, timeout: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if await outbound(runtime, conversation_id):  # type: ignore[arg-type]
            return time.monotonic() - started
        await asyncio.sleep(0.01)
    return float("inf")


async def test_a_hung_model_in_one_workspace_does_not_delay_another(tmp_path: Path) -> None:
    runtime = await open_runtime(make_settings(tmp_path / "data"), migrate=True)
    worker = Worker(runtime, concurrency=8)
    assert worker.per_workspace == default_workspace_share(8) < 8
    with FakeOpenAI(api_key="sk-hung") as fake:
        try:
            agent_a, channel_a = await make_agent_channel(
                runtime,
                workspace_name="Hung",
                model_settings={"integration": "openai", "model": "gpt-test", "max_retries": 0, "timeout": HUNG_SECONDS + 10},
            )
            async with runtime.db.session() as session:
                workspace_a = await session.scalar(select(Workspace).where(Workspace.id == agent_a.workspace_id))
                assert workspace_a is not None
                await connect_integration(
                    session, runtime.vault, workspace_a, provider="openai", name="openai",
                    public={"base_url": fake.base_url}, secrets={"api_key": "sk-hung"},
                )
            _agent_b, channel_b = await make_agent_channel(runtime, workspace_name="Offline")
            for _ in range(10):
                fake.queue_reply("finally", delay=HUNG_SECONDS)
            running = asyncio.create_task(worker.run())
            for visitor in range(10):
                await say(runtime, channel_a, "Are you open today?", user=f"a-visitor-{visitor}")
            await asyncio.to_thread(fake.wait_for_requests, worker.per_workspace, timeout=10)  # A holds all it may

            async def customer_of_b(number: int) -> float:
                accepted = await say(runtime, channel_b, "What are your opening hours?", user=f"b-customer-{number}")
                return await _replied(runtime, accepted.conversation_id, timeout=HUNG_SECONDS / 4)

            # B's customers one after another while A's ten wait: each must be answered at once.
            # (Without the fair share every one of them waits for A's model: 5 s, then given up.)
            waits = sorted([await customer_of_b(number) for number in range(10)])
            p95 = waits[math.ceil(len(waits) * 0.95) - 1]
            assert p95 < 2.0, f"workspace B waited {waits} s while A's model hung"
            assert len(fake.requests) == worker.per_workspace  # A never took more than its share
        finally:
            running.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await running
            await worker.stop()
            await close_runtime(runtime)
