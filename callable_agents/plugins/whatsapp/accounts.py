"""A WhatsApp channel's Twilio account: the channel row, its integration, its credentials.

Webhooks arrive by the hundred per second in a busy workspace and each one needs the
account's Auth Token to check its signature. Decrypted credentials are therefore kept in
process memory, keyed by the integration *and its ``updated_at``* (a changed token is a
new key), for a short time only; they are never written anywhere else. Clients for the
Twilio REST API are kept the same way, one per tenant's credentials, all sharing one async
HTTP client that is closed with the runtime.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
from twilio.rest import Client

from callable_agents.plugin import (
    ChannelRecord,
    Runtime,
    StoredIntegration,
    WorkspaceKey,
    read_channel_account,
    read_integration_secret,
)
from callable_agents.plugins.whatsapp.twilio_api import (
    BoundedAsyncTwilioHttpClient,
    make_client,
    make_http_client,
)
from callable_agents.plugins.whatsapp.config import KIND, WhatsAppConfig, channel_config, channel_urls
from callable_agents.plugins.whatsapp.settings import twilio_settings
from callable_agents.plugins.whatsapp.content_api import Template
from callable_agents.plugins.whatsapp.pacing import SendPacer

SERVICE_NAME = "whatsapp_twilio"
PROVIDER = "twilio"  # the integration provider a WhatsApp channel sends through
CREDENTIALS_TTL_SECONDS = 60.0
# A channel looked up for one webhook serves the next ones for this long: under load that
# saves a query per webhook; a change to the channel (disabled, new sender) applies after it.
CHANNEL_TTL_SECONDS = 1.0
MAX_CACHED = 1024
MEDIA_TIMEOUT_SECONDS = 20.0


@dataclass(frozen=True)
class Credentials:
    """One tenant's Twilio credentials (decrypted). Kept out of ``repr`` and logs."""

    account_sid: str
    auth_token: str = field(repr=False)
    api_key_sid: str | None = None
    api_key_secret: str | None = field(default=None, repr=False)

    @property
    def rest_auth(self) -> tuple[str, str]:
        """(user, password) for REST calls and media: the API key if there is one."""
        if self.api_key_sid and self.api_key_secret:
            return self.api_key_sid, self.api_key_secret
        return self.account_sid, self.auth_token


@dataclass(frozen=True)
class ChannelAccount:
    """A WhatsApp channel with everything needed to check its webhooks and send from it."""

    channel: ChannelRecord
    config: WhatsAppConfig
    workspace: WorkspaceKey
    integration: StoredIntegration
    credentials: Credentials
    urls: dict[str, str]  # the webhook URLs configured in Twilio (see whatsapp_config.channel_urls)


class NotAWhatsAppChannel(LookupError):
    """No enabled WhatsApp channel with this id (or it has no Twilio integration)."""


class WhatsAppServices:
    """Process-wide helpers in ``runtime.services``: credential cache, clients, HTTP pools."""

    def __init__(self) -> None:
        self._credentials: dict[tuple[str, datetime | None], tuple[float, Credentials]] = {}
        self._accounts: dict[str, tuple[float, ChannelAccount]] = {}
        self._clients: dict[tuple[str, datetime | None], Client] = {}
        self._twilio_http: BoundedAsyncTwilioHttpClient | None = None
        self._media_http: httpx.AsyncClient | None = None
        self.loading: dict[str, asyncio.Future[ChannelAccount]] = {}  # channel lookups in flight
        self.pacer = SendPacer()  # slots for creates, per sender and account (pacing.py)
        self.choice_contents: dict[tuple[str, str], str] = {}  # (account, request) -> Content SID made for it
        self.templates: dict[str, tuple[float, list[Template]]] = {}  # account -> (expires, approved templates)

    @classmethod
    def of(cls, runtime: Runtime) -> WhatsAppServices:
        return runtime.services.shared(cls, cls)

    # --- credentials --------------------------------------------------------------------

    async def credentials(self, runtime: Runtime, integration: StoredIntegration) -> Credentials:
        """The integration's decrypted credentials, from memory when fresh."""
        key = (integration.id, integration.updated_at)
        now = time.monotonic()
        cached = self._credentials.get(key)
        if cached is not None and cached[0] > now:
            return cached[1]
        public = integration.public
        api_key_sid = public.get("api_key_sid")
        api_key_secret = (
            read_integration_secret(runtime, integration, "api_key_secret")
            if api_key_sid and "api_key_secret" in integration.secret_fields
            else None
        )
        credentials = Credentials(
            account_sid=str(public.get("account_sid") or ""),
            auth_token=read_integration_secret(runtime, integration, "auth_token"),
            api_key_sid=api_key_sid if api_key_secret else None,
            api_key_secret=api_key_secret,
        )
        if len(self._credentials) >= MAX_CACHED:
            self._credentials = {k: v for k, v in self._credentials.items() if v[0] > now}
            if len(self._credentials) >= MAX_CACHED:
                self._credentials.clear()
        self._credentials[key] = (now + CREDENTIALS_TTL_SECONDS, credentials)
        return credentials

    # --- clients ------------------------------------------------------------------------

    def twilio_http(self) -> BoundedAsyncTwilioHttpClient:
        if self._twilio_http is None:
            self._twilio_http = make_http_client()
        return self._twilio_http

    def media_http(self) -> httpx.AsyncClient:
        if self._media_http is None:
            self._media_http = httpx.AsyncClient(timeout=MEDIA_TIMEOUT_SECONDS)
        return self._media_http

    def client(self, runtime: Runtime, integration: StoredIntegration, credentials: Credentials) -> Client:
        """A Twilio REST client acting for this tenant (one per credentials version)."""
        key = (integration.id, integration.updated_at)
        client = self._clients.get(key)
        if client is None:
            if len(self._clients) >= MAX_CACHED:
                self._clients.clear()
            client = self._clients[key] = make_client(
                credentials.account_sid,
                credentials.auth_token,
                api_key_sid=credentials.api_key_sid,
                api_key_secret=credentials.api_key_secret,
                api_base_url=twilio_settings(runtime.settings).twilio_api_base_url,
                messaging_base_url=twilio_settings(runtime.settings).twilio_messaging_base_url,
                content_base_url=twilio_settings(runtime.settings).twilio_content_base_url,
                http_client=self.twilio_http(),
            )
        return client

    def cached_account(self, channel_id: str) -> ChannelAccount | None:
        cached = self._accounts.get(channel_id)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        return None

    def remember_account(self, account: ChannelAccount) -> None:
        now = time.monotonic()
        if len(self._accounts) >= MAX_CACHED:
            self._accounts = {k: v for k, v in self._accounts.items() if v[0] > now}
            if len(self._accounts) >= MAX_CACHED:
                self._accounts.clear()
        self._accounts[account.channel.id] = (now + CHANNEL_TTL_SECONDS, account)

    def forget(self) -> None:
        """Drop every cached channel, credential and client (e.g. after an integration changed)."""
        self._accounts.clear()
        self._credentials.clear()
        self._clients.clear()

    async def aclose(self) -> None:
        self.forget()
        if self._twilio_http is not None:
            await self._twilio_http.close()
            self._twilio_http = None
        if self._media_http is not None:
            await self._media_http.aclose()
            self._media_http = None


async def load_channel_account(runtime: Runtime, channel_id: str) -> ChannelAccount:
    """The enabled WhatsApp channel ``channel_id`` with its Twilio account (one query).

    The id comes from a public URL: it is the only thing that identifies the workspace, so
    the lookup is unscoped by design; everything after it uses the channel's workspace.
    Raises :class:`NotAWhatsAppChannel` for an unknown, disabled or non-WhatsApp channel,
    or one without a Twilio integration. A found channel is reused for
    :data:`CHANNEL_TTL_SECONDS`; an unknown id is looked up every time.
    """
    services = WhatsAppServices.of(runtime)
    cached = services.cached_account(channel_id)
    if cached is not None:
        return cached
    # When the cached entry expires under load, every webhook in flight misses at once: the
    # first one looks the channel up, the others wait for its answer.
    loading = services.loading.get(channel_id)
    if loading is not None:
        return await asyncio.shield(loading)
    loading = services.loading[channel_id] = asyncio.get_running_loop().create_future()
    try:
        account = await _look_up_account(runtime, services, channel_id)
    except BaseException as exc:
        loading.set_exception(exc)
        loading.exception()  # retrieved: nobody else may be waiting
        raise
    else:
        loading.set_result(account)
        return account
    finally:
        del services.loading[channel_id]


async def _look_up_account(runtime: Runtime, services: WhatsAppServices, channel_id: str) -> ChannelAccount:
    found = await read_channel_account(runtime, channel_id)  # one query: channel, integration, workspace key
    if found is None:
        raise NotAWhatsAppChannel(channel_id)
    channel, integration, workspace = found.channel, found.integration, found.workspace
    if channel.kind != KIND or not channel.enabled or integration.provider != PROVIDER:
        raise NotAWhatsAppChannel(channel_id)
    config = channel_config(channel)
    credentials = await services.credentials(runtime, integration)
    urls = channel_urls(runtime.settings, channel, config)
    account = ChannelAccount(channel, config, workspace, integration, credentials, urls)
    services.remember_account(account)
    return account


def describe_account(account: ChannelAccount) -> dict[str, Any]:
    """Safe facts for logs: never a secret."""
    return {
        "channel_id": account.channel.id,
        "workspace_id": account.workspace.id,
        "account_sid": account.credentials.account_sid,
    }
