"""Outbound: stored replies and a person's messages delivered through the channel's ``send``.

- :mod:`.send`  outbound messages stored, the ``send`` job, delivery with retries and what ``send`` receives
"""
