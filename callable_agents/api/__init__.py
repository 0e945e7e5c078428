"""The admin API under ``/api/v1``: bearer API keys scoped to one workspace, JSON in and out.

Secrets are write-only here as everywhere: integration responses carry ``has_<field>`` and
at most the last four characters. Imports run one way, requests -> endpoints -> routes:

- :mod:`.requests` — what every endpoint shares: ``authenticated`` (the API key check) and
  ``json_body``.
- :mod:`.conversations` — the conversation inbox: read, take over, reply, return.
- :mod:`.routes` — the workspace and integration endpoints, the OpenAPI document, and
  :func:`~callable_agents.api.routes.admin_routes`, which the server mounts.
"""
