"""``/dashboard/integrations``: the workspace's provider accounts (a messaging account, a model server, an API).

Everyone signed in sees the connected integrations: provider, name, public fields and, for
each secret, whether it is set and at most its last four characters (stored in clear at
write time; nothing is decrypted to list them). Owners connect one, rotate its secrets and
remove it. The connect form of every provider is generated from the provider type's public
and secret field models (:mod:`.schema_forms`), so a plugin's provider gets its form with no
dashboard code.

Connecting and rotating go through :func:`~callable_agents.core.store.integrations.connect_checked`,
the path of the CLI and the admin API: the provider's ``verify`` runs before anything is
stored, so credentials it refuses are never kept; the form comes back with the provider's
reason, the public values as typed and the secrets empty. Removing one that channels or
agents use is refused, naming them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from callable_agents.core.contracts.integrations import ProviderType
from callable_agents.core.errors import CallableError, NotFound
from callable_agents.core.models import Workspace
from callable_agents.core.runtime import runtime_of
from callable_agents.core.store.integrations import (
    connect_checked,
    describe_integration,
    find_integration,
    get_integration,
    list_integrations,
    remove_integration,
)
from callable_agents.core.store.users import SignedIn
from callable_agents.dashboard.forms import GENERAL, Form
from callable_agents.dashboard.guard import page
from callable_agents.dashboard.rendering import render
from callable_agents.dashboard.schema_forms import FieldSpec, data_from_form, fields_of

PUBLIC_PREFIX = "public."
SECRET_PREFIX = "secret."


def _providers(request: Request) -> Mapping[str, ProviderType]:
    return runtime_of(request).plugins.providers.types


def _provider_fields(provider: ProviderType) -> tuple[list[FieldSpec], list[FieldSpec]]:
    return fields_of(provider.public, prefix=PUBLIC_PREFIX), fields_of(provider.secrets, prefix=SECRET_PREFIX, secret=True)


def _secret_names(provider: ProviderType) -> list[str]:
    return [SECRET_PREFIX + name for name in provider.secret_fields]


async def _context(request: Request, viewer: SignedIn, **extra: Any) -> dict[str, Any]:
    providers = _providers(request)
    async with runtime_of(request).db.sessions() as session:
        rows = await list_integrations(session, viewer.workspace_id)
    integrations = []
    for row in rows:
        view = describe_integration(row, providers)
        schema = providers.get(row.provider)
        public_fields = schema.public_fields if schema else ()
        secret_fields = schema.secret_fields if schema else ()
        integrations.append({
            "id": row.id,
            "name": row.name,
            "provider": row.provider,
            "provider_title": schema.display_name if schema else row.provider,
            "public": [(name, view.get(name)) for name in public_fields if view.get(name) not in (None, "")],
            "secrets": [(name, view.get(f"has_{name}", False), view.get(f"{name}_last4")) for name in secret_fields],
            "secret_specs": fields_of(schema.secrets, prefix=SECRET_PREFIX, secret=True) if schema else [],
            "updated_at": row.updated_at,
        })
    choosing = request.query_params.get("connect", "")
    context: dict[str, Any] = {
        "section": "integrations",
        "title": "Integrations",
        "integrations": integrations,
        "providers": [
            {"name": p.name, "title": p.display_name, "description": p.description, "fields": _provider_fields(p)}
            for p in providers.values()
        ],
        "choosing": choosing if choosing in providers else "",
        "connect_form": Form(values={"name": choosing}) if choosing in providers else Form(),
        "rotating": "",
        "rotate_form": Form(),
        "blank_form": Form(),
        "removal_error": "",
        "done": _done_message(request, integrations),
    }
    context.update(extra)
    return context


_DONE = {"connected": "Connected {name}: the provider accepted the credentials.",
         "rotated": "Rotated the secrets of {name}: the provider accepted them.",
         "removed": "Integration removed."}


def _done_message(request: Request, integrations: list[dict[str, Any]]) -> str:
    """The message after a redirect; it names only an integration of this workspace (so a
    crafted link cannot make the page say anything)."""
    template = _DONE.get(request.query_params.get("done", ""))
    if template is None:
        return ""
    found = next((i for i in integrations if i["id"] == request.query_params.get("id")), None)
    if "{name}" in template and found is None:
        return ""
    return template.format(name=repr(found["name"]) if found else "")


@page
async def index(request: Request, viewer: SignedIn) -> Response:
    return render(request, "integrations/index.html", await _context(request, viewer))


def _validate(model: type[BaseModel], data: dict[str, Any], form: Form, prefix: str) -> None:
    """Put what ``model`` refuses beside its fields (the service layer checks again)."""
    try:
        model.model_validate(data)
    except ValidationError as exc:
        form.fail(exc, prefix=prefix)


def _fail(form: Form, exc: CallableError, provider: ProviderType) -> None:
    """A refusal from the service layer or the provider, on the field it names if it is ours."""
    field = getattr(exc, "field", None)
    if field in provider.secret_fields:
        form.error(SECRET_PREFIX + field, str(exc))
    elif field in provider.public_fields:
        form.error(PUBLIC_PREFIX + field, str(exc))
    else:
        form.error(GENERAL, str(exc))


async def _workspace(request: Request, viewer: SignedIn) -> Workspace:
    async with runtime_of(request).db.sessions() as session:
        workspace = await session.get(Workspace, viewer.workspace_id)
    if workspace is None:
        raise NotFound("this workspace no longer exists; sign in again")
    return workspace


@page(owner_only=True)
async def connect(request: Request, viewer: SignedIn) -> Response:
    """Check the credentials with the provider, then store them (nothing stored on a refusal)."""
    providers = _providers(request)
    provider = providers.get(request.path_params["provider"])
    if provider is None:
        raise NotFound(f"provider {request.path_params['provider'][:60]!r}: not one of {', '.join(providers)}")
    form = await Form.read(request)
    public_specs, secret_specs = _provider_fields(provider)
    name = form.text("name", required=True, label="name", max_length=100)
    public = data_from_form(public_specs, form)
    secrets = data_from_form(secret_specs, form)
    _validate(provider.public, public, form, PUBLIC_PREFIX)
    _validate(provider.secrets, secrets, form, SECRET_PREFIX)
    for missing in sorted(provider.required_secrets - set(secrets)):
        form.error(SECRET_PREFIX + missing, f"{missing}: this field is required")
    if form.ok:
        async with runtime_of(request).db.sessions() as session:
            if await find_integration(session, viewer.workspace_id, name) is not None:
                form.error("name", f"name: an integration named {name!r} exists; pick another name, or rotate its secrets")
    if form.ok:
        try:
            connected = await connect_checked(
                runtime_of(request), await _workspace(request, viewer),
                provider=provider.name, name=name, public=public, secrets=secrets,
            )
        except CallableError as exc:
            _fail(form, exc, provider)
    if not form.ok:
        context = await _context(
            request, viewer, choosing=provider.name, connect_form=form.without(_secret_names(provider))
        )
        return render(request, "integrations/index.html", context, status_code=422)
    return RedirectResponse(f"/dashboard/integrations?done=connected&id={connected.view['id']}", status_code=303)


@page(owner_only=True)
async def rotate(request: Request, viewer: SignedIn) -> Response:
    """Replace some secrets (empty ones are kept), checked with the provider before storing."""
    async with runtime_of(request).db.sessions() as session:
        row = await get_integration(session, viewer.workspace_id, request.path_params["integration_id"])
    provider = _providers(request).get(row.provider)
    if provider is None:
        raise NotFound(f"provider {row.provider!r} is not loaded (is its plugin installed?)")
    form = await Form.read(request)
    secrets = data_from_form(fields_of(provider.secrets, prefix=SECRET_PREFIX, secret=True), form)
    if not secrets:
        form.error(GENERAL, "enter at least one new secret (the empty ones stay as they are)")
    _validate(provider.secrets, secrets, form, SECRET_PREFIX)
    if form.ok:
        try:
            await connect_checked(
                runtime_of(request), await _workspace(request, viewer),
                provider=row.provider, name=row.name, public={}, secrets=secrets,
            )
        except CallableError as exc:
            _fail(form, exc, provider)
    if not form.ok:
        context = await _context(request, viewer, rotating=row.id, rotate_form=form.without(_secret_names(provider)))
        return render(request, "integrations/index.html", context, status_code=422)
    return RedirectResponse(f"/dashboard/integrations?done=rotated&id={row.id}", status_code=303)


@page(owner_only=True)
async def remove(request: Request, viewer: SignedIn) -> Response:
    """Delete an integration nothing uses; one that channels or agents use is refused, naming them."""
    try:
        async with runtime_of(request).db.session() as session:
            await remove_integration(session, viewer.workspace_id, request.path_params["integration_id"])
    except NotFound:
        raise
    except CallableError as exc:
        context = await _context(request, viewer, removal_error=str(exc))
        return render(request, "integrations/index.html", context, status_code=exc.status_code)
    return RedirectResponse("/dashboard/integrations?done=removed", status_code=303)


def routes() -> list[BaseRoute]:
    return [
        Route("/integrations", index, methods=["GET"]),
        Route("/integrations/connect/{provider}", connect, methods=["POST"]),
        Route("/integrations/{integration_id}/secrets", rotate, methods=["POST"]),
        Route("/integrations/{integration_id}/remove", remove, methods=["POST"]),
    ]
