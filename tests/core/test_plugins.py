"""The plugin contract: a plugin registered in a fixture adds types; broken ones stop start-up by name."""

from __future__ import annotations

import types
from collections.abc import AsyncIterator

import pytest
from pydantic import BaseModel
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from callable_agents.core.contracts.channels import ChannelCapabilities, ChannelType, OutboundMessage, SendResult
from callable_agents.core.errors import PluginError
from callable_agents.core.contracts.events import HandoffEvent
from callable_agents.core.contracts.hookspecs import hookimpl
from callable_agents.core.contracts.integrations import ProviderType, PublicFields, SecretFields, StoredIntegration
from callable_agents.core.contracts.loaders import Document, EmbeddingsType, LoaderType, LoadRequest
from callable_agents.core.plugins import load_plugins
from callable_agents.core.contracts.tools import ToolContext, ToolType
from callable_agents.server import create_app
from tests.conftest import make_settings


class EmptyConfig(BaseModel):
    pass


async def _send(runtime: object, message: OutboundMessage) -> SendResult:
    return SendResult(provider_message_id="carrier-1")


async def _load(request: LoadRequest) -> AsyncIterator[Document]:
    yield Document(text="pigeon", metadata={"title": "t"})


def _pigeon_routes() -> list[Route]:
    return [Route("/ping", lambda request: PlainTextResponse("coo"))]


class PigeonPlugin:
    """A third-party plugin as a package would write it."""

    def __init__(self) -> None:
        self.handoffs: list[HandoffEvent] = []

    @hookimpl
    def register_channels(self) -> list[ChannelType]:
        return [
            ChannelType(
                name="pigeon",
                description="Carrier pigeon",
                config_schema=EmptyConfig,
                capabilities=ChannelCapabilities(max_message_length=140, formatting="plain"),
                send=_send,
                routes=_pigeon_routes,
            )
        ]

    @hookimpl
    def register_tools(self) -> list[ToolType]:
        return [ToolType(name="seed", description="Scatter seed", config_schema=EmptyConfig, factory=self._tool)]

    @hookimpl
    def register_knowledge_loaders(self) -> list[LoaderType]:
        return [LoaderType(name="scroll", description="Rolled paper", options_schema=EmptyConfig, load=_load)]

    @hookimpl
    async def conversation_handed_off(self, event: HandoffEvent) -> None:
        self.handoffs.append(event)

    @staticmethod
    def _tool(context: ToolContext) -> object:
        return object()


@pytest.fixture
def pigeon() -> PigeonPlugin:
    return PigeonPlugin()


def test_plugin_registered_in_a_fixture_adds_channel_tool_and_loader(pigeon: PigeonPlugin) -> None:
    plugins = load_plugins(autoload=False, extra=[("pigeon", pigeon)])
    assert plugins.channels.get("pigeon").capabilities.max_message_length == 140
    assert plugins.tools.get("seed").description == "Scatter seed"
    assert plugins.loaders.get("scroll").name == "scroll"
    described = {row["plugin"]: row["provides"] for row in plugins.describe()}
    assert described["pigeon"] == {"channel": ["pigeon"], "tool": ["seed"], "knowledge loader": ["scroll"]}


def test_channel_routes_are_mounted_by_the_server(tmp_path, pigeon: PigeonPlugin) -> None:  # type: ignore[no-untyped-def]
    settings = make_settings(tmp_path, auto_migrate=True)
    with TestClient(create_app(settings, extra_plugins=[("pigeon", pigeon)])) as client:
        assert client.get("/channels/pigeon/ping").text == "coo"


async def test_async_event_hooks_are_awaited_and_a_failing_one_does_not_stop_others(pigeon: PigeonPlugin) -> None:
    class Broken:
        @hookimpl
        def conversation_handed_off(self, event: HandoffEvent) -> None:
            raise RuntimeError("boom")

    plugins = load_plugins(autoload=False, extra=[("pigeon", pigeon), ("broken", Broken())])
    event = HandoffEvent(workspace_id="w", channel_id="c", conversation_id="conv", reason="asked for a person")
    await plugins.emit("conversation_handed_off", event=event)
    assert pigeon.handoffs == [event]


def test_duplicate_type_name_names_both_plugins(pigeon: PigeonPlugin) -> None:
    with pytest.raises(PluginError, match=r"plugin 'copycat' registers channel type 'pigeon', already registered by plugin 'pigeon'"):
        load_plugins(autoload=False, extra=[("pigeon", pigeon), ("copycat", PigeonPlugin())])


def test_plugin_that_fails_to_import_is_named() -> None:
    with pytest.raises(PluginError, match=r"plugin 'ghost' failed to import: ModuleNotFoundError"):
        load_plugins(autoload=False, extra=[("ghost", "callable_agents_no_such_plugin_module")])


def test_plugin_whose_hook_raises_is_named() -> None:
    module = types.ModuleType("exploding")

    @hookimpl
    def register_tools() -> list[ToolType]:
        raise RuntimeError("config missing")

    module.register_tools = register_tools  # type: ignore[attr-defined]
    with pytest.raises(PluginError, match=r"plugin 'exploding' failed in register_tools\(\): RuntimeError\('config missing'\)"):
        load_plugins(autoload=False, extra=[("exploding", module)])


def test_implementation_with_arguments_not_in_the_spec_is_refused() -> None:
    class WrongArgs:
        @hookimpl
        def reply_sent(self, event: object, extra_argument: object) -> None:
            pass

    with pytest.raises(PluginError, match=r"plugin 'wrongargs' does not match the hook specifications"):
        load_plugins(autoload=False, extra=[("wrongargs", WrongArgs())])


def test_unknown_hook_name_is_refused() -> None:
    class Misspelt:
        @hookimpl
        def register_channel(self) -> list[ChannelType]:  # the spec is register_channels
            return []

    with pytest.raises(PluginError, match=r"plugin 'misspelt' does not match the hook specifications"):
        load_plugins(autoload=False, extra=[("misspelt", Misspelt())])


def test_wrong_return_type_is_refused() -> None:
    class WrongType:
        @hookimpl
        def register_tools(self) -> list[str]:
            return ["not a tool type"]

    with pytest.raises(PluginError, match=r"plugin 'wrongtype': register_tools\(\) must return ToolType objects, got str"):
        load_plugins(autoload=False, extra=[("wrongtype", WrongType())])


def test_broken_plugin_stops_server_start_up(tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings = make_settings(tmp_path, auto_migrate=True)
    with pytest.raises(PluginError, match="copycat"):
        create_app(settings, extra_plugins=[("pigeon", PigeonPlugin()), ("copycat", PigeonPlugin())])


async def test_integration_providers_register_through_a_hook_and_verify_their_own_integrations() -> None:
    class AcmeFields(PublicFields):
        pass

    class AcmeSecrets(SecretFields):
        pass

    async def verify_acme(runtime: object, integration: StoredIntegration) -> dict[str, str]:
        return {"sid": "acme-1"}

    class Acme:
        @hookimpl
        def register_integration_providers(self) -> list[ProviderType]:
            return [ProviderType("acme", "Acme accounts", AcmeFields, AcmeSecrets, verify=verify_acme)]

    class Silent:
        @hookimpl
        def register_integration_providers(self) -> list[ProviderType]:
            return [ProviderType("someone-else", "No checks", AcmeFields, AcmeSecrets)]

    plugins = load_plugins(autoload=False, extra=[("acme", Acme()), ("silent", Silent())])
    acme = plugins.providers.get("acme")
    assert acme.verify is not None
    stored = StoredIntegration("i", "w", "acme", "main", {}, frozenset(), None)
    assert await acme.verify(None, stored) == {"sid": "acme-1"}  # type: ignore[arg-type]
    assert plugins.providers.get("someone-else").verify is None
    described = {row["plugin"]: row["provides"] for row in plugins.describe()}
    assert described["acme"] == {"integration provider": ["acme"]}
    with pytest.raises(PluginError, match=r"plugin 'copycat' registers integration provider type 'acme', already registered by plugin 'acme'"):
        load_plugins(autoload=False, extra=[("acme", Acme()), ("copycat", Acme())])


async def test_event_hooks_go_through_pluggy_and_are_skipped_without_listeners(pigeon: PigeonPlugin) -> None:
    assert not load_plugins(autoload=False).has_listeners("conversation_handed_off")
    plugins = load_plugins(autoload=False, extra=[("pigeon", pigeon)])
    assert plugins.has_listeners("conversation_handed_off")
    event = HandoffEvent(workspace_id="w", channel_id="c", conversation_id="conv", reason="asked for a person")
    results = plugins.manager.subset_hook_caller("conversation_handed_off", [])(event=event)
    assert len(results) == 1  # pluggy holds the implementation that emit() calls
    await results[0]
    assert pigeon.handoffs == [event]


def test_one_embeddings_type_at_most_may_be_the_default() -> None:
    builtin = load_plugins(autoload=False)
    default = builtin.default_embeddings
    assert default is not None and default.default
    owner = builtin.embeddings.owners[default.name]

    class Rival:
        @hookimpl
        def register_embeddings(self) -> list[EmbeddingsType]:
            return [EmbeddingsType("rival", "Another default", factory=lambda request: None, default=True)]  # type: ignore[arg-type, return-value]

    with pytest.raises(PluginError, match="several embeddings types say they are the default") as caught:
        load_plugins(autoload=False, extra=[("rival", Rival())])
    assert f"plugin {owner!r}" in str(caught.value) and "plugin 'rival'" in str(caught.value)


def test_without_a_default_embeddings_type_a_knowledge_base_must_name_its_model() -> None:
    from callable_agents.core.errors import InvalidInput
    from callable_agents.core.knowledge.embeddings import default_model_spec
    from callable_agents.core.plugins import Plugins

    class Plain:
        @hookimpl
        def register_embeddings(self) -> list[EmbeddingsType]:
            return [EmbeddingsType("plain", "Not a default", factory=lambda request: None)]  # type: ignore[arg-type, return-value]

    plugins = Plugins()
    plugins.register(Plain(), "plain")
    plugins.collect()
    assert plugins.default_embeddings is None
    with pytest.raises(InvalidInput, match="a knowledge base must name its model .*available: plain"):
        default_model_spec(plugins)
