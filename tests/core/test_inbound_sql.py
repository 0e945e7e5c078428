"""The SQLite statements of the inbound writer: stored as SQLAlchemy stores, answered from indexes."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import datetime, timedelta, timezone

from sqlalchemy.dialects import sqlite

from callable_agents.core.conversation.inbound.sql import sqlite_stamp
from callable_agents.core.models import Message
from callable_agents.core.conversation.inbound import InboundMessage, accept_inbound
from callable_agents.core.runtime import Runtime
from tests.core.pipeline_helpers import make_agent_channel
from tests.core.sqlite_plans import QueryPlans, table_scans


def test_stamps_are_the_dialects_datetime_text() -> None:
    dialect = sqlite.dialect()
    stored_as = Message.__table__.c.created_at.type.dialect_impl(dialect).bind_processor(dialect)
    moments = [
        datetime(2026, 11, 24, 9, 30, 15, 123456, tzinfo=timezone.utc),
        datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc),  # no microseconds: still six digits
        datetime(2026, 6, 1, 23, 59, 59, 999999, tzinfo=timezone(timedelta(hours=-5))),  # stored in UTC
    ]
    for moment in moments:
        assert sqlite_stamp(moment) == stored_as(moment)


def test_a_naive_datetime_is_refused() -> None:
    try:
        sqlite_stamp(datetime(2026, 1, 1))
    except ValueError as exc:
        assert "naive datetime" in str(exc)
    else:
        raise AssertionError("a naive datetime was stamped")


async def test_every_statement_searches_an_index(sqlite_runtime: Runtime) -> None:
    """With thousands of conversations and jobs, a table scan per batch costs more than the batch."""
    runtime = sqlite_runtime
    _agent, channel = await make_agent_channel(runtime)
    plans = QueryPlans(runtime)
    await plans.start()
    for round_ in range(2):  # new conversations, then existing ones with a pending turn and a duplicate
        await asyncio.gather(
            *(
                accept_inbound(
                    runtime, channel,
                    InboundMessage(external_user_id=f"u{n}", text="hi", provider_message_id=f"SM{round_}{n:031d}"),
                )
                for n in range(6)
            ),
            accept_inbound(runtime, channel, InboundMessage(external_user_id="u0", text="hi", provider_message_id=f"SM0{0:031d}")),
        )

    found = await plans.explain()
    assert {statement.split()[0] for statement in plans.statements} >= {"SELECT", "INSERT", "UPDATE"}
    assert table_scans(found) == []
    # ix_jobs_claim (status, run_after) "searches" every pending job of every conversation.
    by_status = [(statement, detail) for statement, detail in found if "ix_jobs_claim" in detail]
    assert by_status == []


def test_trace_callback_is_available() -> None:
    """The test above relies on the driver's expanded-SQL trace (SQLite >= 3.14)."""
    assert sqlite3.sqlite_version_info >= (3, 14)
