"""The admin API under ``/api/v1``: bearer API keys scoped to one workspace, JSON in and out.

Every endpoint calls the service layer (``core/store``, ``core/knowledge``), the same
functions the CLI and the dashboard call: one code path per operation. Errors are
``{"error": {"message", "type", "field"}}``: 404 for anything outside the key's workspace,
422 naming the field for a bad body. Secrets are write-only here as everywhere: integration
responses carry ``has_<field>`` and at most the last four characters. Imports run one way,
requests -> endpoint modules -> routes:

- :mod:`.requests` — what every endpoint shares: ``authenticated`` (the API key check),
  ``json_body`` and its field readers.
- :mod:`.agents` — agents: list, read, create, change, delete.
- :mod:`.knowledge` — knowledge bases, sources (text, URL, uploaded files; re-sync,
  remove; indexed in the background) and the retrieval test.
- :mod:`.channels` — channels (a chat agent only), with their public addresses.
- :mod:`.integrations` — provider accounts, checked live before they are stored.
- :mod:`.members` — people who sign in: list, invite (a one-time link), change role,
  remove (never the last owner); withdraw an invitation.
- :mod:`.keys` — admin API keys: list, create (shown once), revoke.
- :mod:`.conversations` — the conversation inbox: read, take over, reply, return.
- :mod:`.catalog` — what the loaded plugins offer (tool and channel types, providers, source
  kinds) with their settings' JSON Schemas, for building forms.
- :mod:`.openapi` — the OpenAPI 3.1 document, from the endpoints' docstrings.
- :mod:`.routes` — the route table (:func:`~callable_agents.api.routes.admin_routes`,
  which the server mounts) and ``GET /api/v1/openapi.json``.
"""
