"""The service layer over the database: every read and write scoped by workspace.

- :mod:`.workspaces`    workspaces and hashed admin API keys
- :mod:`.vault`         AES-256-GCM envelope encryption, per-workspace data keys
- :mod:`.key_files`     the master key files: ``master.key``, a rotation's ``master.key.new``
- :mod:`.key_rotation`  master key rotation, the start-up check that the key opens every workspace
- :mod:`.integrations`  provider accounts: public fields in clear, secrets through the vault
- :mod:`.providers`     core's own integration providers (openai, http), registered like a plugin's
- :mod:`.agent_spec`    the agent spec: its fields, validation and located problems
- :mod:`.agents`        agents: data access and the snapshot a graph run uses
- :mod:`.channels`      channels: a kind, its config and one chat agent
- :mod:`.reply_policy`  every channel's ``replies``: several messages in a row (interrupt, wait, queue)
- :mod:`.public_channels`  snapshots for public endpoints (a channel by its id or slug)
"""
