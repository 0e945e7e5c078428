"""Inbound: a customer's message made durable, deduped and filed with its turn job.

- :mod:`.writer`  group commit of accepted messages (``accept_inbound``)
- :mod:`.queue`   the webhook's one-append queue, filed by the worker (``queue_inbound``)
- :mod:`.sql`     the statements both use
"""
