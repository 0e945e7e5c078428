"""The plugin contract: what a plugin implements and what it receives.

- :mod:`.hookspecs`  the pluggy hook specifications (one documented function per hook)
- :mod:`.channels`   channel types, their capabilities, outbound messages and send results
- :mod:`.tools`      tool types and the context their factories get
- :mod:`.loaders`    knowledge loader and embeddings types
- :mod:`.events`     the payloads of the event hooks
"""
