"""How a channel answers a customer who sends several messages in a row: its reply policy.

Every channel has one, whatever its kind: its ``replies`` (a column of its own beside the
channel type's ``config``; unset means the default):

* ``interrupt`` (the default): a turn starts as soon as its message is filed. A customer
  message that lands while the turn runs supersedes it: the turn's model call is
  cancelled (in its own process; in another it is refused at commit), it sends nothing,
  and one new turn answers all the unanswered messages together. On a channel that
  streams, a turn whose tokens a visitor has already seen is not withdrawn; the new
  messages get the next turn. The cost: the superseded turn's tokens are paid for.
* ``wait``: a turn starts ``window_seconds`` after the latest message (a burst is
  answered once, every reply waits the window).
* ``queue``: every message gets its own turn, in order, none withdrawn.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

DEFAULT_WAIT_SECONDS = 2.0


class ReplyPolicy(BaseModel):
    """A channel's ``replies``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    strategy: Literal["interrupt", "wait", "queue"] = Field(
        default="interrupt",
        description="interrupt: a newer message supersedes the running turn; wait: answer after a quiet window; "
        "queue: one turn per message, in order.",
    )
    window_seconds: float = Field(
        default=DEFAULT_WAIT_SECONDS, ge=0, le=60, description="The quiet window of the wait strategy, in seconds."
    )


DEFAULT_POLICY = ReplyPolicy()


def reply_policy_of(stored: Mapping[str, Any] | None) -> ReplyPolicy:
    """The policy stored on a channel (validated when the channel was written); the default
    when none is set or a stored one no longer validates."""
    if not stored:
        return DEFAULT_POLICY
    try:
        return ReplyPolicy.model_validate(stored)
    except ValidationError:
        return DEFAULT_POLICY


def describe_policy(policy: ReplyPolicy) -> dict[str, Any]:
    """The policy as ``channels show`` prints it: the window only where it applies."""
    if policy.strategy == "wait":
        return {"strategy": policy.strategy, "window_seconds": policy.window_seconds}
    return {"strategy": policy.strategy}
