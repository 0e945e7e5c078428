"""Core's own integration providers, ``openai`` and ``http``, registered like any plugin's.

``openai`` holds a model server's key (the agents' chat models and OpenAI embeddings use it);
it is checked when connected by listing the server's models (:func:`verify_openai`), so a
wrong key or base URL is refused before anything is stored. ``http`` holds credentials for a
business's own API or webhook receiver and is not checked (there is no one question every
such API answers).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import openai
from pydantic import Field

from callable_agents.core.contracts.hookspecs import hookimpl
from callable_agents.core.contracts.integrations import (
    HttpUrl,
    ProviderType,
    PublicFields,
    SecretFields,
    SecretText,
    StoredIntegration,
    Text,
)
from callable_agents.core.errors import CallableError, InvalidInput

if TYPE_CHECKING:
    from callable_agents.core.runtime import Runtime

PLUGIN_NAME = "core"
VERIFY_TIMEOUT_SECONDS = 10.0


class ModelServerUnavailable(CallableError):
    """The model server could not be reached, or failed on its side; trying again may work."""

    status_code = 502


class OpenAIPublic(PublicFields):
    base_url: HttpUrl | None = Field(
        default=None, title="Base URL", description="An OpenAI-compatible server, e.g. http://localhost:11434/v1 (empty: OpenAI)."
    )
    organization: Text | None = Field(default=None, description="OpenAI organization id, if any.")


class OpenAISecrets(SecretFields):
    required = frozenset({"api_key"})
    api_key: SecretText | None = Field(default=None, title="API key", description="Checked by listing the server's models.")


class HttpPublic(PublicFields):
    base_url: HttpUrl | None = Field(default=None, title="Base URL", description="The API's base URL, for reference.")


class HttpSecrets(SecretFields):
    """Credentials for a business's own API or webhook receiver, referenced by tools as
    ``{{secret:NAME.token}}`` (lookup headers) or ``{integration: NAME, field: signing_secret}``."""

    token: SecretText | None = Field(default=None, description="A bearer token.")
    api_key: SecretText | None = Field(default=None, title="API key", description="An API key.")
    signing_secret: SecretText | None = Field(default=None, description="A secret for signing webhooks (HMAC).")


async def verify_openai(runtime: Runtime, integration: StoredIntegration) -> Mapping[str, Any]:
    """Prove the key works by listing the server's models (``GET {base_url}/models``).

    Returns ``{"id": the server, "friendly_name": "N models", "models": the first ids}``.
    Raises :class:`InvalidInput` when the server refuses the key (401/403) or has no models
    endpoint there (404: the base URL is wrong, e.g. without ``/v1``), and
    :class:`ModelServerUnavailable` when it cannot be reached or fails (5xx, 429).
    """
    from callable_agents.core.store.integrations import read_integration_secret  # it imports this module's users

    base_url = integration.public.get("base_url") or None
    where = base_url or "api.openai.com"
    organization = integration.public.get("organization") or None
    client = openai.AsyncOpenAI(
        api_key=read_integration_secret(runtime, integration, "api_key"),
        base_url=base_url,
        organization=organization,
        timeout=VERIFY_TIMEOUT_SECONDS,
        max_retries=0,
    )
    try:
        async with client:
            page = await client.models.list()
    except (openai.AuthenticationError, openai.PermissionDeniedError) as exc:
        raise InvalidInput(
            f"api_key: the model server at {where} refused the key (HTTP {exc.status_code}): check the API key",
            field="api_key",
        ) from None
    except openai.NotFoundError:
        raise InvalidInput(
            f"base_url: {where} has no OpenAI-compatible models list (HTTP 404 for /models): "
            "check the base URL (it usually ends in /v1)",
            field="base_url",
        ) from None
    except openai.APIStatusError as exc:
        if exc.status_code >= 500 or exc.status_code == 429:
            raise ModelServerUnavailable(
                f"the model server at {where} could not list its models right now (HTTP {exc.status_code}); try again"
            ) from None
        raise InvalidInput(
            f"the model server at {where} refused to list its models (HTTP {exc.status_code})"
        ) from None
    except openai.APIConnectionError as exc:  # includes timeouts
        raise ModelServerUnavailable(
            f"could not reach the model server at {where}: {type(exc).__name__} (is the base URL right and the server up?)"
        ) from None
    ids = [model.id for model in page.data]
    return {"id": where, "friendly_name": f"{len(ids)} model{'s' if len(ids) != 1 else ''}", "models": ids[:20]}


OPENAI = ProviderType(
    "openai", "OpenAI or an OpenAI-compatible server.", OpenAIPublic, OpenAISecrets, verify=verify_openai,
    title="OpenAI",
)
HTTP = ProviderType(
    "http", "A business API or webhook receiver (token, API key, signing secret).", HttpPublic, HttpSecrets,
    title="HTTP API",
)


@hookimpl
def register_integration_providers() -> list[ProviderType]:
    return [OPENAI, HTTP]
