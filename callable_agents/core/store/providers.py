"""Core's own integration providers, ``openai`` and ``http``, registered like any plugin's.

``openai`` holds a model server's key (the agents' chat models and OpenAI embeddings use it);
``http`` holds credentials for a business's own API or webhook receiver. Neither is checked
with its provider when connected (no ``verify``): a bad key shows on the first model call.
"""

from __future__ import annotations

from pydantic import Field

from callable_agents.core.contracts.hookspecs import hookimpl
from callable_agents.core.contracts.integrations import (
    HttpUrl,
    ProviderType,
    PublicFields,
    SecretFields,
    SecretText,
    Text,
)

PLUGIN_NAME = "core"


class OpenAIPublic(PublicFields):
    base_url: HttpUrl | None = Field(default=None, description="An OpenAI-compatible server (default: OpenAI).")
    organization: Text | None = Field(default=None, description="OpenAI organization id, if any.")


class OpenAISecrets(SecretFields):
    required = frozenset({"api_key"})
    api_key: SecretText | None = Field(default=None, description="API key.")


class HttpPublic(PublicFields):
    base_url: HttpUrl | None = Field(default=None, description="The API's base URL, for reference.")


class HttpSecrets(SecretFields):
    """Credentials for a business's own API or webhook receiver, referenced by tools as
    ``{{secret:NAME.token}}`` (lookup headers) or ``{integration: NAME, field: signing_secret}``."""

    token: SecretText | None = Field(default=None, description="A bearer token.")
    api_key: SecretText | None = Field(default=None, description="An API key.")
    signing_secret: SecretText | None = Field(default=None, description="A secret for signing webhooks (HMAC).")


OPENAI = ProviderType("openai", "OpenAI or an OpenAI-compatible server.", OpenAIPublic, OpenAISecrets)
HTTP = ProviderType(
    "http", "A business API or webhook receiver (token, API key, signing secret).", HttpPublic, HttpSecrets
)


@hookimpl
def register_integration_providers() -> list[ProviderType]:
    return [OPENAI, HTTP]
