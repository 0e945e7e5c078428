"""The web chat API's rate limits: sessions per address, messages per visitor and per address.

A sliding window of a minute per key (a visitor or an address, per channel); a request is
allowed when fewer than the channel's limit fall inside it. A refused request is not
counted, and a request checked against several keys counts against all of them or none.
The counts are the server's shared rate limits (:func:`callable_agents.plugin.rate_limits`):
in memory on SQLite, shared by every process on PostgreSQL (or Redis when configured), so
N server processes still allow the limit once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from callable_agents.plugin import rate_limits

if TYPE_CHECKING:
    from callable_agents.plugin import Runtime

WINDOW_SECONDS = 60.0


def limit_key(kind: str, channel_id: str, who: str) -> str:
    """A counter's key: what is limited, on which channel, for whom (a visitor id or an address)."""
    return f"webchat:{kind}:{channel_id}:{who}"


async def acquire(runtime: Runtime, name: str, checks: Sequence[tuple[str, int]]) -> int | None:
    """Count one request against every ``(key, limit)`` or none; None when allowed, else the
    whole seconds to wait (for ``Retry-After``). ``name`` labels refusals in the metrics."""
    return await rate_limits(runtime).acquire(checks, WINDOW_SECONDS, name=name)
