"""Benchmark: several processes on PostgreSQL.

    .venv/bin/python bench/scale.py [--postgres-url postgresql://postgres@127.0.0.1:5432/test]
                                    [--requests 3000] [--messages 300]

On a scratch database it creates (and drops), with the fake Twilio and a zero-latency fake
model, everything on loopback:

1. **webhook on PostgreSQL**: ``callable serve`` (worker off) acknowledging signed Twilio
   webhooks beside a bare Starlette endpoint, in alternating rounds (as ``bench/webhook.py``).
   Each acknowledgement waits for its append to be committed; concurrent webhooks share one
   commit (group commit). Targets: >= 0.5x the bare endpoint, p99 < 50 ms.
2. **end to end with 1 and 2 worker processes**: one ``callable serve`` taking the webhooks
   and N ``callable worker`` processes sharing the jobs; messages per second from the first
   webhook to the last reply at Twilio. Target: 2 workers >= 1.6x one.
"""

from __future__ import annotations

import argparse
import secrets
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402

from bench.webhook import (  # noqa: E402
    ACCOUNT, TOKEN, discard_unanswered, end_to_end, prepare, print_rounds, webhook_rounds,
)
from bench.workspace import OPENAI_KEY  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--postgres-url", default="postgresql://postgres@127.0.0.1:5432/test",
                        help="a PostgreSQL server to create the scratch database on (its admin database)")
    parser.add_argument("--requests", type=int, default=3000, help="measured webhooks per server and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--customers", type=int, default=500)
    parser.add_argument("--messages", type=int, default=300, help="messages for each end-to-end figure (0: skip them)")
    args = parser.parse_args()

    from callable_agents.testing.openai_server import FakeOpenAI
    from callable_agents.testing.twilio_server import FakeTwilio

    name = f"callable_scale_{secrets.token_hex(4)}"
    with psycopg.connect(args.postgres_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    database_url = f"{args.postgres_url.rsplit('/', 1)[0]}/{name}"
    try:
        with FakeTwilio() as twilio, FakeOpenAI(api_key=OPENAI_KEY) as openai, tempfile.TemporaryDirectory() as tmp:
            twilio.add_account(ACCOUNT, TOKEN)
            setup = prepare(Path(tmp) / "data", database_url, twilio.base_url, openai.base_url)
            rounds = webhook_rounds(
                setup, requests=args.requests, rounds=args.rounds, warmup=args.warmup,
                concurrency=args.concurrency, customers=args.customers,
            )
            figures: dict[int, float] = {}
            for workers in (1, 2) if args.messages else ():
                discard_unanswered(setup)
                figures[workers], _ = end_to_end(setup, twilio, args.messages, args.concurrency, workers=workers)
    finally:
        with psycopg.connect(args.postgres_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    print(
        f"Several processes on PostgreSQL: loopback, {args.concurrency} connections, "
        f"{args.requests} webhooks per round, {args.rounds} rounds"
    )
    print_rounds(rounds)
    if figures:
        for workers, rate in figures.items():
            print(f"end to end, 1 web + {workers} worker process(es): {rate:.1f} messages/s ({args.messages} messages)")
        scaling = figures[2] / figures[1]
        print(f"2 workers / 1 worker: {scaling:.2f}x (target >= 1.6x: {'met' if scaling >= 1.6 else 'NOT met'})")
    return 1 if any(bare.failures or ours.failures for bare, ours in rounds) else 0


if __name__ == "__main__":
    raise SystemExit(main())
