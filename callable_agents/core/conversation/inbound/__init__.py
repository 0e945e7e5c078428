"""Inbound: a customer's message made durable, deduped and filed with its turn job.

- :mod:`.accept`  ``accept_inbound``: the message and its turn job, committed before it returns
- :mod:`.writer`  group commit of accepted messages (the ``InboundMessage`` a channel builds)
- :mod:`.queue`   ``queue_inbound``: the webhook's one-append queue
- :mod:`.filing`  ``file_queued``: the worker files queued rows with the writer's logic
- :mod:`.sql`     the statements they use

A channel plugin imports these from :mod:`callable_agents.plugin`.
"""

from callable_agents.core.conversation.inbound.accept import Accepted, accept_inbound
from callable_agents.core.conversation.inbound.queue import queue_inbound
from callable_agents.core.conversation.inbound.writer import InboundMessage

__all__ = ["Accepted", "InboundMessage", "accept_inbound", "queue_inbound"]
