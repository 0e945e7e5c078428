"""Outbound: stored replies delivered through the channel's ``send``, with retries."""
