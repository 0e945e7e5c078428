"""The channel contract: what a channel plugin provides and what ``send`` receives.

A channel turns provider requests into inbound messages (through its routes) and delivers
replies (through ``send``). The pipeline shapes replies to the channel's capabilities.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol

from pydantic import BaseModel

from callable_agents.core.errors import CallableError
from callable_agents.core.reply.dialects import Dialect, DialectName
from callable_agents.core.reply.splitting import LengthUnit

if TYPE_CHECKING:
    from starlette.routing import BaseRoute

    from callable_agents.core.conversation.outbound.status import DeliveryRanks
    from callable_agents.core.contracts.integrations import StoredIntegration
    from callable_agents.core.runtime import Runtime
    from callable_agents.core.store.public_channels import ChannelRecord


@dataclass(frozen=True)
class ChannelCapabilities:
    """How replies must be shaped for this channel."""

    max_message_length: int | None = None  # split longer replies into parts; None = no limit
    # The reply's dialect: core's "markdown", "plain" or "starred" (single-asterisk bold), or a
    # Dialect the plugin builds from Markup (callable_agents.plugin exports both).
    formatting: Dialect | DialectName = "markdown"
    media: bool = False  # can send media by URL
    citations: bool = True  # show source links under answers
    streaming: bool = False  # can show tokens as they are produced
    images_in: bool = False  # customers can send images
    # What the model is told about replying here ("You are replying on ..."); empty: a
    # sentence for the formatting dialect.
    prompt_guidance: str = ""
    # How the provider counts max_message_length: "code_points", or "utf16" (UTF-16 units,
    # an emoji two): parts then fit in both counts, the stricter one.
    length_unit: LengthUnit = "code_points"
    locations: bool = False  # can send a place natively (OutboundMessage.location); else its text goes
    choices: bool = False  # can show choices as buttons (OutboundMessage.choices); else they go numbered
    # Free text may reach the customer only this many hours after their latest message
    # (a messaging app's service window); outside it only a reply template can. None: always.
    reply_window_hours: int | None = None


@dataclass(frozen=True)
class ReplyTemplate:
    """A pre-approved message a person can send when free text can't reach the customer.

    ``configured``: the channel's own template (from its config), whose ``variables`` map
    each variable to its configured value (``{reply}``: what the person types, ``{name}``:
    the customer's name); ``takes_text`` says whether the person's text goes out in it.
    Otherwise one of the provider account's approved templates: ``variables`` maps each
    variable to the sample it was approved with, and the person gives every value.
    ``name``, ``language``, ``category`` and ``status`` are the provider's, when known.
    """

    id: str
    label: str
    variables: dict[str, str] = field(default_factory=dict)
    takes_text: bool = False
    configured: bool = True
    name: str = ""
    language: str = ""
    category: str = ""
    status: str = ""


# (the channel's stored config) -> the templates a person may send on it
ReplyTemplatesFunction = Callable[[dict[str, Any]], list[ReplyTemplate]]
# (the runtime, the channel's id) -> the channel's template first, then the provider account's
# approved ones; raises ChannelTemplatesError when the provider can't be asked
ChannelTemplatesFunction = Callable[["Runtime", str], Awaitable[list[ReplyTemplate]]]


class ChannelTemplatesError(Exception):
    """The provider's templates could not be listed (unreachable, refused credentials...);
    the message says why in words, without secrets."""


class ChannelMediaError(Exception):
    """A stored media item could not be fetched from the provider (refused credentials,
    gone, over the size limit, a URL off the provider's host...); the message says why in
    words, without secrets or the provider's response body."""


# (the runtime, the channel's id, a media URL stored on one of its messages) -> (content, content
# type); raises ChannelMediaError when the provider can't or mustn't be asked
FetchMediaFunction = Callable[["Runtime", str, str], Awaitable[tuple[bytes, str]]]
# (a provider's delivery error code) -> what it means in words, or None when unknown
DeliveryErrorFunction = Callable[[str], str | None]


@dataclass(frozen=True)
class ConversationInfo:
    """What ``send`` knows about the conversation, taken from what the outbound code holds
    (so a channel never queries the database for it)."""

    external_user_id: str
    channel_kind: str
    integration_id: str | None = None  # the channel's provider integration, if it has one
    profile: dict[str, Any] = field(default_factory=dict)  # what the provider told about the user
    last_inbound_at: datetime | None = None  # the customer's latest message (e.g. a provider's reply window)
    opted_out: bool = False
    status: str = "bot"  # bot | human | closed


@dataclass(frozen=True)
class OutboundMessage:
    """One part of a reply (or a person's message) to deliver."""

    workspace_id: str
    channel_id: str
    conversation_id: str
    message_id: int
    to: str  # the channel's external user id
    text: str
    media: list[dict[str, Any]] = field(default_factory=list)
    conversation: ConversationInfo = field(kw_only=True)
    part: int = 0  # which part of the agent's reply this is (0: the first, or a person's message)
    # A place to send (a SendLocation effect): latitude, longitude, label, address. ``text``
    # is the same place as words and a map link, for a channel that cannot show it.
    location: dict[str, Any] | None = None
    # Choices to show as buttons (an OfferChoices effect): {"text", "options": [{"id", "title"}]}.
    # ``text`` is the same question with the choices numbered, for a channel without buttons.
    choices: dict[str, Any] | None = None
    # A template a person chose from the account's approved ones: {"id", "variables"}, sent
    # as it is whatever the reply window (the channel's configured template is the channel's).
    template: dict[str, Any] | None = None


@dataclass(frozen=True)
class SendResult:
    provider_message_id: str | None
    status: str = "sent"


class SendError(Exception):
    """Delivery failed. ``transient`` errors are retried with backoff; others are final."""

    def __init__(
        self,
        message: str,
        *,
        transient: bool,
        code: str | None = None,
        retry_after: float | None = None,
        opted_out: bool = False,
    ) -> None:
        super().__init__(message)
        self.transient = transient
        self.code = code
        self.retry_after = retry_after
        self.opted_out = opted_out


@dataclass(frozen=True)
class TurnStarted:
    """The agent started working on a conversation's messages (e.g. to show typing)."""

    workspace_id: str
    channel_id: str
    conversation_id: str
    external_user_id: str
    provider_message_ids: list[str]  # the customer messages being answered, oldest first


SendFunction = Callable[["Runtime", OutboundMessage], Awaitable[SendResult]]
# (settings, the Channel row) -> what people paste into a provider or share, by label
AddressesFunction = Callable[[Any, Any], dict[str, str]]
# (settings, a config the type's config_schema accepted) -> a whole HTML document showing how
# the channel looks with it; shown in a sandboxed frame (no scripts run) as the form changes.
PreviewFunction = Callable[[Any, BaseModel], str]


class InboundMedia(Protocol):
    """What ``media_input`` reads of a customer's stored message."""

    @property
    def id(self) -> int: ...
    @property
    def channel_id(self) -> str: ...
    @property
    def media(self) -> list[dict[str, Any]]: ...


# (runtime, the customer's stored message, whether the model accepts images) -> content blocks
MediaInputFunction = Callable[["Runtime", InboundMedia, bool], Awaitable[list[dict[str, Any]]]]
TurnStartedFunction = Callable[["Runtime", TurnStarted], Awaitable[None]]
RoutesFactory = Callable[[], Sequence["BaseRoute"]]


# --- setting a channel up at its provider (optional) ------------------------------------------


@dataclass(frozen=True)
class SenderOption:
    """One address the provider account can send from, as a channel setup offers it."""

    value: str  # what goes in the channel's config, e.g. "+14155550100" or a service id
    config_field: str  # the config_schema field ``value`` fills, e.g. "sender"
    label: str  # what people see, e.g. "+14155550100 (Front desk)"
    kind: str  # the provider's kind of sender, e.g. "phone_number", "messaging_service", "sandbox"
    configurable: bool = True  # ``configure`` can point it at the channel by itself
    note: str = ""  # worth knowing before picking it (e.g. "not registered with the provider yet")


@dataclass(frozen=True)
class SenderList:
    """The senders an account can use, and what could not be checked while listing them."""

    senders: tuple[SenderOption, ...]
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class ConfigureResult:
    """What ``configure`` did at the provider, or why it could not (then: paste ``urls`` by hand)."""

    configured: bool
    target: str  # what was (or is to be) configured, in words, e.g. "phone number +14155550100"
    urls: Mapping[str, str]  # label -> URL, always given (copy buttons), e.g. {"inbound": ..., "status": ...}
    settings: Mapping[str, str] = field(default_factory=dict)  # provider field -> value set; empty if not configured
    reason: str = ""  # why nothing was configured and what to do by hand
    notes: tuple[str, ...] = ()  # e.g. the URL that was replaced


@dataclass(frozen=True)
class TestMessageResult:
    """A test message the provider accepted."""

    to: str
    provider_message_id: str | None
    status: str


SetupProblem = Literal["credentials_refused", "not_found", "unreachable", "refused"]
_SETUP_STATUS: dict[str, int] = {"credentials_refused": 422, "not_found": 404, "unreachable": 502, "refused": 422}


class ChannelSetupError(CallableError):
    """The provider refused a set-up step or could not be reached; the message says what to do.

    ``problem``: ``credentials_refused`` (the integration's credentials no longer work),
    ``not_found`` (the sender is not in this account), ``unreachable`` (the provider could
    not be reached or failed on its side; trying again may work) or ``refused`` (anything
    else the provider said no to). Never carries a secret.
    """

    def __init__(self, message: str, *, problem: SetupProblem) -> None:
        super().__init__(message)
        self.problem = problem
        self.status_code = _SETUP_STATUS[problem]


# (runtime, the workspace's integration) -> the senders its account can use
ListSendersFunction = Callable[["Runtime", "StoredIntegration"], Awaitable[SenderList]]
# (runtime, the channel's integration, the channel) -> what was set at the provider
ConfigureFunction = Callable[["Runtime", "StoredIntegration", "ChannelRecord"], Awaitable[ConfigureResult]]
# (runtime, the channel's integration, the channel, recipient, text) -> the accepted message
SendTestFunction = Callable[["Runtime", "StoredIntegration", "ChannelRecord", str, str], Awaitable[TestMessageResult]]


@dataclass(frozen=True)
class ChannelSetup:
    """How a channel type is set up at its provider, for the dashboard, CLI and API.

    Every function gets the integration as a snapshot (``StoredIntegration``) the caller
    read within the signed-in workspace, and for ``configure``/``send_test`` the channel
    (``ChannelRecord``) that uses it; a plugin refuses a channel whose ``integration_id``
    is not that integration. Failures at the provider raise :class:`ChannelSetupError`;
    bad input (a malformed recipient) raises ``InvalidInput`` naming the field.

    * ``list_senders``: what the account can send from (numbers, services, ...), each with
      the config field its value fills, so a form can offer a picker.
    * ``configure``: after checking the channel's sender belongs to the account, point its
      inbound (and status) webhooks at the channel's URLs, the very URLs the channel checks
      signatures against. Where the provider offers no API for it, return
      ``configured=False`` with the ``urls`` and the ``reason`` (never an error).
    * ``send_test``: send ``text`` to ``to`` from the channel's sender.
    """

    list_senders: ListSendersFunction
    configure: ConfigureFunction
    send_test: SendTestFunction


@dataclass(frozen=True)
class ChannelType:
    """A kind of channel.

    ``routes()`` returns Starlette routes mounted at ``/channels/{name}``;
    ``public_routes()`` returns routes mounted at the server root (e.g. a script for
    embedding on a website, a shareable chat page). Handlers reach the process's
    :class:`Runtime` with ``runtime_of(request)``.
    """

    name: str
    description: str
    config_schema: type[BaseModel]
    capabilities: ChannelCapabilities
    # None: the channel delivers by storing. A reply counts as delivered once committed
    # (its clients read stored messages and live events), so no send job runs.
    send: SendFunction | None
    routes: RoutesFactory | None = None
    public_routes: RoutesFactory | None = None
    on_turn_started: TurnStartedFunction | None = None  # best effort; errors are logged
    # Turns a customer message's media into model input: image blocks when the model
    # accepts images, transcripts or notes otherwise. Without it the agent gets a note.
    media_input: MediaInputFunction | None = None
    # The channel's public addresses (webhook URLs, a page link, a script tag), for
    # `callable channels show`.
    public_addresses: AddressesFunction | None = None
    # The provider's delivery statuses by rank, when the channel reports them with
    # record_delivery_status: a report that came before the send recorded the provider's
    # message id is applied by these ranks once it does.
    delivery_ranks: DeliveryRanks | None = None
    # The templates a person may send outside ``capabilities.reply_window_hours`` (the inbox).
    reply_templates: ReplyTemplatesFunction | None = None
    # The same, with the provider account's approved templates listed (async, may call the
    # provider): the inbox's reply box, the admin API's channel templates, the CLI.
    channel_templates: ChannelTemplatesFunction | None = None
    # A delivery failure's provider code in words, for the person reading the inbox.
    describe_delivery_error: DeliveryErrorFunction | None = None
    # How people see the name, e.g. "Carrier pigeon"; empty: the name.
    title: str = ""
    # People reach the channel at a public URL named by the channel's ``slug`` (a page):
    # set-up forms ask for one.
    public_slug: bool = False
    # The integration provider a channel of this type needs (a ProviderType name); None: none.
    # Until the workspace has one, the dashboard offers to connect it instead of the setup.
    integration_provider: str | None = None
    # Setting the channel up at that provider (senders, webhooks, a test message), if the
    # plugin can; see :class:`ChannelSetup`.
    setup: ChannelSetup | None = None
    # Downloads a media item stored on one of the channel's messages, for the inbox: the
    # provider may serve customers' images, voice notes and files only with the account's
    # credentials (HTTP Basic authentication for media), which a person's browser does not
    # have. The dashboard calls it with a channel of the viewer's workspace
    # and sends the bytes on; the plugin sends credentials only to its provider's own host
    # and caps the size. None: the inbox links to the stored URL as it is.
    fetch_media: FetchMediaFunction | None = None
    # A live preview of the channel's look for its set-up form (e.g. its colour and
    # title); escape every value the config holds.
    preview: PreviewFunction | None = None

    @property
    def display_name(self) -> str:
        return self.title or self.name
