"""The service layer over the database: every read and write scoped by workspace.

- :mod:`.workspaces`    workspaces and hashed admin API keys
- :mod:`.vault`         AES-256-GCM envelope encryption, per-workspace data keys
- :mod:`.integrations`  provider accounts: public fields in clear, secrets through the vault
- :mod:`.agents`        agents: prompt, business info, model settings, tools, knowledge bases
- :mod:`.channels`      channels: a kind, its config and one chat agent
"""
