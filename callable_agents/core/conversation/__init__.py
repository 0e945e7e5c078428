"""A conversation's messages, one way: inbound -> turn -> outbound.

- :mod:`.inbound`   a channel's message accepted, deduped, queued and filed with its turn job
- :mod:`.turn`      the agent graph run on the conversation's thread
- :mod:`.outbound`  replies and a person's messages delivered through the channel's ``send``
- :mod:`.streams`   live events (tokens, messages, statuses) per conversation
"""
