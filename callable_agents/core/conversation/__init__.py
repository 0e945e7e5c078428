"""A conversation's messages, one way: inbound -> turn -> outbound.

- :mod:`.inbound`   a channel's message accepted, deduped, queued and filed with its turn job
- :mod:`.turn`      the agent graph run on the conversation's thread; its result persisted
- :mod:`.outbound`  replies and a person's messages delivered through the channel's ``send``
- :mod:`.people`    a person's replies, taking a conversation over and giving it back
- :mod:`.messages`  what a channel may read or record on a stored message (delivery progress, media notes)
- :mod:`.jobs`      the conversation's job kinds (and the plugins'), registered in one call
- :mod:`.streams`   live events (tokens, messages, statuses, stop signals) per conversation
- :mod:`.fanout`    those events to every process on the database (LISTEN/NOTIFY or Redis)
"""
