"""The dashboard: the business's web app at ``/dashboard`` (Jinja2 + HTMX, server-rendered).

It stands beside the admin API on the same service layer (``core/store``, ``core/knowledge``):
a page calls the function the API and the CLI call, so the three check and store alike. It
names no built-in plugin: forms for a tool's, provider's or channel's settings are generated
from the type's schema (:mod:`.schema_forms`), so a third-party plugin gets its form with no
dashboard code. Assets (HTMX, the style sheet) are vendored in ``static/``: nothing is
fetched from the internet. Templates are escaped by default.

The modules, in the order a request meets them:

- :mod:`.routes`        ``dashboard_routes()``: every page module's routes under ``/dashboard``,
                        and the static files; the server mounts them.
- :mod:`.guard`         the session cookie, :func:`~.guard.page` (signed in, CSRF on every unsafe
                        method, owner-only pages) and the viewer it hands each page.
- :mod:`.rendering`     the Jinja2 environment, :func:`~.rendering.render` (layout, left nav,
                        CSRF token) and the dashboard's error pages.
- :mod:`.forms`         a submitted form's values and per-field errors (from ``InvalidInput`` and
                        pydantic), kept to show the form again as typed.
- :mod:`.schema_forms`  fields of a pydantic config schema as form controls, and back.
- :mod:`.limits`        sign-in attempts per address and per e-mail.
- :mod:`.account`       sign in, sign out, one-time links (create the owner, accept an invitation),
                        and :func:`~.account.owner_setup_links` for ``callable serve``/``demo``.
- :mod:`.overview`      ``/dashboard``: what is set up and what to do next.
- :mod:`.settings_page` members and invitations, API keys (shown once), the workspace.
- the sections of the left nav, one module each: :mod:`.agents`, :mod:`.knowledge`,
  :mod:`.tools`, :mod:`.integrations`, :mod:`.channels`, :mod:`.conversations` (the inbox;
  its server-sent events in :mod:`.conversations_live`, what both show in
  :mod:`.conversation_views`, its script ``static/inbox.js``).
  The Agents builder has helpers: :mod:`.agent_form` (the form as an agent spec and back,
  tool settings generated from each type's schema), :mod:`.agent_lookup` (an agent by id,
  scoped), :mod:`.agent_test` and :mod:`.turn_trace` (the Test panel).

Writing a page (the pattern every section follows):

- A section module has ``routes() -> list[BaseRoute]`` (paths relative to ``/dashboard``)
  and handlers ``@page async def name(request, viewer: SignedIn) -> Response``
  (``@page(owner_only=True)`` for owners). Scope every read and write by
  ``viewer.workspace_id``; call the service layer, never the ORM for what a service does.
- Templates live in ``templates/<section>/``, extend ``base.html`` (``{% block content %}``,
  set ``section`` in the context so the nav marks it) and import the form macros with
  ``{% import "_macros.html" as m with context %}``: ``m.field``, ``m.select``,
  ``m.checkbox``, ``m.schema_field`` (a generated control), ``m.errors_summary``,
  ``m.csrf()`` (every form), ``m.copyable``, ``m.status_badge``.
- A POST reads ``Form.read(request)``, validates through the service layer, records what it
  refuses with ``form.fail(exc)`` and renders the form again with status 422 (HTMX swaps
  422 answers too), or redirects (303) on success. A value shown once (a key, a link) comes
  back through HTMX (``hx-post`` + ``hx-select``), so a reload never posts again.
- Raising a ``CallableError`` renders the dashboard's error page (or, for HTMX, a message
  in ``#flash``).
- Tests: ``tests/dashboard/support.py`` (a running server, ``add_member``,
  ``signed_in_client`` with CSRF, ``signed_in_page``, ``check_accessibility``,
  ``screenshot``, ``tab_to``).
"""
