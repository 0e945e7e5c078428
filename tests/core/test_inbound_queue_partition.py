"""The inbound queue on PostgreSQL when the database stops answering (a network partition,
simulated by a TCP proxy that holds every byte): the append gives up within its timeout, so
the webhook answers 503 before the provider gives up on it, and once the network is back
the provider's retry stores the message exactly once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from callable_agents.core.bootstrap import close_runtime, open_runtime
from callable_agents.core.conversation.inbound import InboundMessage, queue_inbound
from callable_agents.core.conversation.inbound.filing import file_queued
from callable_agents.core.conversation.inbound.queue import APPEND_TIMEOUT_SECONDS
from callable_agents.core.models import Message
from callable_agents.core.runtime import Runtime
from tests.conftest import make_settings
from tests.core.pipeline_helpers import make_agent_channel
from tests.e2e.cuttable_proxy import CuttableProxy


@pytest.fixture
async def proxied(tmp_path: Path, fresh_postgres_url: str) -> AsyncIterator[tuple[Runtime, CuttableProxy]]:
    database = urlsplit(fresh_postgres_url)
    proxy = CuttableProxy(database.hostname or "127.0.0.1", database.port or 5432).start()
    url = fresh_postgres_url.replace(f"{database.hostname}:{database.port or 5432}", f"127.0.0.1:{proxy.port}", 1)
    runtime = await open_runtime(make_settings(tmp_path / "data", url), migrate=True)
    try:
        yield runtime, proxy
    finally:
        proxy.resume()
        await close_runtime(runtime)
        await asyncio.to_thread(proxy.close)


def message(sid: str) -> InboundMessage:
    return InboundMessage(external_user_id="whatsapp:+15557000001", text=f"text of {sid}", provider_message_id=sid)


async def test_a_stalled_append_fails_in_time_and_the_retry_is_stored_once(proxied: tuple[Runtime, CuttableProxy]) -> None:
    runtime, proxy = proxied
    _agent, channel = await make_agent_channel(runtime, kind="terminal")
    await queue_inbound(runtime, channel, message("SM" + "1" * 32))

    await asyncio.to_thread(proxy.stall)
    started = time.monotonic()
    with pytest.raises(OperationalError):
        await queue_inbound(runtime, channel, message("SM" + "2" * 32))
    waited = time.monotonic() - started
    assert APPEND_TIMEOUT_SECONDS - 0.5 <= waited <= APPEND_TIMEOUT_SECONDS + 4

    await asyncio.to_thread(proxy.resume)
    await queue_inbound(runtime, channel, message("SM" + "2" * 32))  # the provider's retry, on a new connection
    await queue_inbound(runtime, channel, message("SM" + "3" * 32))
    while await file_queued(runtime):
        pass
    async with runtime.db.session() as session:
        stored = list((await session.scalars(select(Message.provider_message_id).order_by(Message.id))).all())
    # The stalled append may or may not have reached the database: stored once either way.
    assert stored == ["SM" + "1" * 32, "SM" + "2" * 32, "SM" + "3" * 32]
