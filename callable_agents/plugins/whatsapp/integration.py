"""The ``twilio`` integration provider: a business's Twilio account and how to check it.

Registered through ``register_integration_providers()``; ``verify`` runs when the
integration is connected (CLI or admin API) and before anything is stored.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import Field

from callable_agents.plugin import (
    InvalidInput,
    ProviderType,
    PublicFields,
    Runtime,
    SecretFields,
    SecretText,
    StoredIntegration,
    pattern_check,
    read_integration_secret,
)
from callable_agents.plugins.whatsapp.accounts import PROVIDER, WhatsAppServices
from callable_agents.plugins.whatsapp.settings import twilio_settings
from callable_agents.plugins.whatsapp.twilio_api import make_client, verify_credentials

AccountSid = Annotated[str, pattern_check(r"AC[0-9a-fA-F]{32}", "'AC' followed by 32 hex characters")]
ApiKeySid = Annotated[str, pattern_check(r"SK[0-9a-fA-F]{32}", "'SK' followed by 32 hex characters")]


class TwilioPublic(PublicFields):
    account_sid: AccountSid = Field(title="Account SID", description="Account SID from the Twilio Console (AC...).")
    api_key_sid: ApiKeySid | None = Field(
        default=None, title="API key SID", description="Optional: an API key (SK...) to send with instead of the Auth Token."
    )


class TwilioSecrets(SecretFields):
    required = frozenset({"auth_token"})
    auth_token: SecretText | None = Field(
        default=None, title="Auth Token", description="Always needed: Twilio signs its webhooks with it."
    )
    api_key_secret: SecretText | None = Field(
        default=None, title="API key secret", description="The API key's secret, with the API key SID."
    )


async def verify_twilio_integration(runtime: Runtime, integration: StoredIntegration) -> Mapping[str, Any]:
    """Prove a Twilio integration's credentials work by fetching its account from Twilio.

    The Auth Token is always checked (webhook signatures need it); an API key, when the
    integration has one, is checked too, since replies are sent with it. Returns the
    account's public facts (``sid``, ``friendly_name``, ``status``, ``type``). Raises
    :class:`InvalidInput` with a clear reason when Twilio answers 401 (wrong token) or 404
    (unknown account), or the account is not active, and
    :class:`~callable_agents.plugins.whatsapp.twilio_api.TwilioUnavailable` when Twilio
    cannot be reached.
    """
    if integration.provider != PROVIDER:
        raise InvalidInput(f"integration {integration.name!r} is a {integration.provider} integration, not twilio")
    account_sid = str(integration.public.get("account_sid") or "")
    http = WhatsAppServices.of(runtime).twilio_http()
    settings = twilio_settings(runtime.settings)
    auth_token = read_integration_secret(runtime, integration, "auth_token")

    def client_for(**api_key: str) -> Any:
        return make_client(
            account_sid,
            auth_token,
            api_base_url=settings.twilio_api_base_url,
            messaging_base_url=settings.twilio_messaging_base_url,
            http_client=http,
            **api_key,
        )

    facts = await verify_credentials(client_for(), account_sid)
    api_key_sid = integration.public.get("api_key_sid")
    if api_key_sid and "api_key_secret" in integration.secret_fields:
        api_key_secret = read_integration_secret(runtime, integration, "api_key_secret")
        try:
            await verify_credentials(
                client_for(api_key_sid=api_key_sid, api_key_secret=api_key_secret), account_sid,
                credentials=f"the API key SID {api_key_sid} and its secret",
            )
        except InvalidInput as exc:
            raise InvalidInput(f"the API key {api_key_sid} does not work for this account: {exc}") from None
    return facts


TWILIO = ProviderType(
    PROVIDER, "A Twilio account (WhatsApp sender).", TwilioPublic, TwilioSecrets, verify=verify_twilio_integration,
    title="Twilio",
)
