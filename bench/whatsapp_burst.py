"""WhatsApp burst benchmark: replies to many customers at once against a throttling Twilio.

One burst: ``--customers`` conversations each get a reply of ``--parts`` parts, all stored
with their send jobs in one transaction (as a busy minute of turns, or an announcement,
leaves them), then the worker delivers them through the real WhatsApp channel and the real
``twilio`` client to the loopback fake Twilio, which refuses (429, code 20429) any create
beyond ``--limit`` per sender in any second. The channel paces its creates
(``CALLABLE_TWILIO_SENDER_SENDS_PER_SECOND``, set to ``--limit``).

Prints the achieved send rate beside the limit and the settings, the 429s Twilio answered,
and checks that every part was created exactly once and each customer's parts in order
(exit status 1 otherwise). Target: zero 429s.

    .venv/bin/python bench/whatsapp_burst.py [--customers 500] [--parts 2] [--limit 80]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import func, select  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from callable_agents.core.bootstrap import close_runtime, open_runtime  # noqa: E402
from callable_agents.core.conversation.outbound.send import SEND_JOB, insert_outbound, new_outbound, send_lane  # noqa: E402
from callable_agents.core.conversation.jobs import register_conversation_jobs  # noqa: E402
from callable_agents.core.jobs import Worker, enqueue_many  # noqa: E402
from callable_agents.core.models import Agent, Channel, Conversation, Message, utcnow  # noqa: E402
from callable_agents.core.runtime import Runtime  # noqa: E402
from callable_agents.core.store.channels import create_or_update_channel  # noqa: E402
from callable_agents.core.store.integrations import connect_integration  # noqa: E402
from callable_agents.core.store.workspaces import create_workspace  # noqa: E402
from callable_agents.testing.settings import make_settings, migrated_sqlite_file  # noqa: E402
from callable_agents.testing.twilio_server import FakeTwilio  # noqa: E402

ACCOUNT = "AC" + "b5" * 16
TOKEN = "bench-burst-auth-token"
SENDER = "whatsapp:+14155238886"


@dataclass(frozen=True)
class BurstResult:
    """What one burst did at the fake Twilio."""

    customers: int
    parts: int
    limit: int
    sender_rate: float | None
    concurrency: int
    seconds: float  # from the worker's start to the last create
    creates: int
    throttled: int  # 429s Twilio answered
    duplicates: int  # parts created more than once
    missing: int  # parts never created
    out_of_order: int  # customers whose parts arrived out of order
    failed: int  # messages that ended failed

    @property
    def rate(self) -> float:
        return self.creates / self.seconds if self.seconds else 0.0


def _customer(n: int) -> str:
    return f"whatsapp:+1555{n:07d}"


async def run_burst(
    data_dir: Path, *, customers: int, parts: int, limit: int, sender_rate: float | None, concurrency: int = 16
) -> BurstResult:
    """Store the burst, deliver it with a worker and check what the fake Twilio received."""
    migrated_sqlite_file(data_dir)
    with FakeTwilio() as fake:
        fake.add_account(ACCOUNT, TOKEN)
        fake.limit_sends_per_second(limit)
        settings = make_settings(
            data_dir, public_base_url="https://bot.example.com", twilio_api_base_url=fake.base_url,
            twilio_messaging_base_url=fake.base_url, twilio_sender_sends_per_second=sender_rate,
        )
        runtime = await open_runtime(settings)
        try:
            async with runtime.db.session() as session:
                workspace = await create_workspace(session, runtime.vault, "Burst bakery")
                await connect_integration(
                    session, runtime.vault, workspace, provider="twilio", name="twilio",
                    public={"account_sid": ACCOUNT}, secrets={"auth_token": TOKEN},
                )
                session.add(Agent(workspace_id=workspace.id, name="assistant", kind="chat", system_prompt="Bakery."))
                await session.flush()
                channel, _ = await create_or_update_channel(
                    session, runtime, workspace.id, name="whatsapp", kind="whatsapp", agent="assistant",
                    integration="twilio", config={"sender": SENDER},
                )
                channel_id = channel.id
            stored_channel = await _channel(runtime, channel_id)

            def store(session: Session) -> None:
                conversations = [
                    Conversation(
                        workspace_id=stored_channel.workspace_id, channel_id=channel_id, external_user_id=_customer(n),
                        last_inbound_at=utcnow() - timedelta(minutes=1),
                    )
                    for n in range(customers)
                ]
                session.add_all(conversations)
                session.flush()
                for n, conversation in enumerate(conversations):
                    messages = [
                        new_outbound(stored_channel, conversation.id, "agent", f"customer {n} part {p}", meta={"part": p})
                        for p in range(parts)
                    ]
                    insert_outbound(session, messages)
                    enqueue_many(
                        session, stored_channel.workspace_id, SEND_JOB, [{"message_id": m.id} for m in messages],
                        lane=send_lane(conversation.id),
                    )

            await runtime.db.run(store)
            register_conversation_jobs(runtime)
            worker = Worker(runtime, concurrency=concurrency, per_workspace=concurrency)
            runtime.services.worker = worker
            started = time.monotonic()
            running = asyncio.create_task(worker.run())
            try:
                while await _unsettled(runtime, channel_id):
                    await asyncio.sleep(0.1)
            finally:
                await worker.stop()
                running.cancel()
                await asyncio.gather(running, return_exceptions=True)
            sent = fake.sent_messages
            last = max((m["time"] for m in sent), default=time.time())
            first = min((m["time"] for m in sent), default=last)
            seconds = max(last - first, 1e-9) if len(sent) > 1 else time.monotonic() - started
            failed = await _count(runtime, channel_id, "failed")
        finally:
            await close_runtime(runtime)
        throttled = len(fake.throttled)
    by_customer: dict[str, list[int]] = defaultdict(list)
    for message in sent:
        by_customer[message["to"]].append(int(str(message["body"]).rsplit(" ", 1)[1]))
    expected = list(range(parts))
    return BurstResult(
        customers=customers, parts=parts, limit=limit, sender_rate=sender_rate, concurrency=concurrency,
        seconds=seconds, creates=len(sent), throttled=throttled,
        duplicates=sum(max(len(got) - len(set(got)), 0) for got in by_customer.values()),
        missing=sum(len(set(expected) - set(by_customer.get(_customer(n), []))) for n in range(customers)),
        out_of_order=sum(1 for got in by_customer.values() if got != sorted(got)),
        failed=failed,
    )


async def _channel(runtime: Runtime, channel_id: str) -> Channel:
    async with runtime.db.sessions() as session:
        channel = await session.get(Channel, channel_id)
    assert channel is not None
    return channel


async def _unsettled(runtime: Runtime, channel_id: str) -> int:
    return await _count(runtime, channel_id, "pending", "sending")


async def _count(runtime: Runtime, channel_id: str, *statuses: str) -> int:
    async with runtime.db.sessions() as session:
        found = await session.scalar(
            select(func.count()).select_from(Message).where(Message.channel_id == channel_id, Message.status.in_(statuses))
        )
    return int(found or 0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--customers", type=int, default=500)
    parser.add_argument("--parts", type=int, default=2, help="reply parts per customer")
    parser.add_argument("--limit", type=int, default=80, help="creates per second per sender the fake Twilio accepts")
    parser.add_argument("--concurrency", type=int, default=16, help="the worker's concurrent jobs")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        result = asyncio.run(
            run_burst(Path(tmp), customers=args.customers, parts=args.parts, limit=args.limit,
                      sender_rate=float(args.limit), concurrency=args.concurrency)
        )
    print(f"burst: {result.customers} customers x {result.parts} parts = {result.customers * result.parts} creates")
    print(
        f"settings: CALLABLE_TWILIO_SENDER_SENDS_PER_SECOND={result.sender_rate:g}, "
        f"worker concurrency {result.concurrency}; fake Twilio limit {result.limit}/s per sender"
    )
    print(f"achieved send rate: {result.rate:.1f}/s   limit: {result.limit}/s   ({result.creates} creates in {result.seconds:.2f} s)")
    print(
        f"429s: {result.throttled}   duplicates: {result.duplicates}   missing: {result.missing}   "
        f"customers out of order: {result.out_of_order}   failed: {result.failed}"
    )
    ok = not (result.throttled or result.duplicates or result.missing or result.out_of_order or result.failed)
    print("OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
