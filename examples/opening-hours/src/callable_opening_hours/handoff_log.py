"""A log line per handoff, to show an event hook in a plugin package.

When ``CALLABLE_OPENING_HOURS_HANDOFF_LOG`` names a file, every ``conversation_handed_off``
event appends one JSON line to it: the UTC time, the workspace, channel and conversation ids
and the handoff reason (which may quote the customer, so keep the file private). Without the
variable nothing is written. The variable is read at each event, so it can be set or changed
without restarting.

The write runs in a worker thread: event hooks are awaited on the server's event loop, which
must not wait on the disk. A failure (a missing directory, no permission) raises; the plugin
manager logs it with this plugin's name and the conversation goes on.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
from pathlib import Path

from callable_agents.plugin import HandoffEvent

LOG_PATH_VARIABLE = "CALLABLE_OPENING_HOURS_HANDOFF_LOG"


def handoff_line(event: HandoffEvent, at: dt.datetime) -> str:
    """One JSON object and a newline (JSON escapes any newline in the reason: one event, one line)."""
    record = {
        "at": at.astimezone(dt.timezone.utc).isoformat(timespec="seconds"),
        "event": "conversation_handed_off",
        "workspace_id": event.workspace_id,
        "channel_id": event.channel_id,
        "conversation_id": event.conversation_id,
        "reason": event.reason,
    }
    return json.dumps(record, ensure_ascii=False) + "\n"


def append_line(path: Path, line: str) -> None:
    """Append ``line`` with a single write, so lines from concurrent events don't interleave."""
    with path.open("a", encoding="utf-8") as log_file:
        log_file.write(line)


def log_path() -> Path | None:
    """The log file named by the environment, or ``None`` when logging is off."""
    value = os.environ.get(LOG_PATH_VARIABLE, "").strip()
    return Path(value).expanduser() if value else None


async def log_handoff(event: HandoffEvent) -> None:
    path = log_path()
    if path is None:
        return
    await asyncio.to_thread(append_line, path, handoff_line(event, dt.datetime.now(dt.timezone.utc)))
