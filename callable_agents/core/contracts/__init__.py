"""The plugin contract: what a plugin implements and what it receives.

- :mod:`.hookspecs`  the pluggy hook specifications (one documented function per hook)
- :mod:`.channels`   channel types, their capabilities, outbound messages and send results
- :mod:`.tools`      tool types and the context their factories get
- :mod:`.loaders`    knowledge loader and embeddings types
- :mod:`.effects`    what a tool asks the conversation to do (send an item, hand off, queue a job)
- :mod:`.jobs`       job kinds plugins contribute
- :mod:`.events`     the payloads of the event hooks
"""
