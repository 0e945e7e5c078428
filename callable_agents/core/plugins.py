"""The plugin manager: loads plugins and keeps the registries of what they provide.

Built-in plugins are ordinary entry points of the ``callable_agents`` group declared by this
distribution, exactly as a third-party package declares its own. Setting
``CALLABLE_DISABLE_PLUGIN_AUTOLOAD=true`` loads only this distribution's entry points (tests
use it so installed third-party plugins don't change what they see).

Any problem — an import error, an implementation whose arguments don't match its spec, a
hook that raises, a duplicate type name, two default embeddings types — raises :class:`PluginError` naming the plugin.
"""

from __future__ import annotations

import importlib
import inspect
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, Generic, TypeVar

import pluggy

from callable_agents.core.contracts import hookspecs
from callable_agents.core.contracts.channels import ChannelType
from callable_agents.core.contracts.integrations import ProviderType
from callable_agents.core.errors import PluginError
from callable_agents.core.contracts.loaders import EmbeddingsType, LoaderType
from callable_agents.core.contracts.tools import ToolType
from callable_agents.core.contracts.jobs import JobKind
from callable_agents.core.store import providers as core_providers
from callable_agents.core.store import test_channel as core_test_channel

log = logging.getLogger(__name__)

DISTRIBUTION = "callable-agents"
ENTRY_POINT_GROUP = hookspecs.PROJECT_NAME

T = TypeVar("T", ChannelType, ToolType, LoaderType, EmbeddingsType, ProviderType, JobKind)

# One plugin's implementation of an event hook, called through pluggy (see Plugins.emit).
EventCaller = Callable[..., list[Any]]


@dataclass
class Registry(Generic[T]):
    """Types of one kind by name, remembering which plugin registered each."""

    kind: str
    types: dict[str, T] = field(default_factory=dict)
    owners: dict[str, str] = field(default_factory=dict)

    def add(self, item: T, plugin_name: str) -> None:
        if item.name in self.types:
            raise PluginError(
                f"plugin {plugin_name!r} registers {self.kind} type {item.name!r}, "
                f"already registered by plugin {self.owners[item.name]!r}: rename one of them"
            )
        self.types[item.name] = item
        self.owners[item.name] = plugin_name

    def get(self, name: str) -> T:
        try:
            return self.types[name]
        except KeyError:
            known = ", ".join(sorted(self.types)) or "none"
            raise PluginError(f"unknown {self.kind} type {name!r}; loaded: {known}") from None

    def __contains__(self, name: object) -> bool:
        return name in self.types

    def __iter__(self) -> Iterator[T]:
        return iter(self.types.values())


class Plugins:
    """The loaded plugins and their registries."""

    def __init__(self) -> None:
        self.manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self.manager.add_hookspecs(hookspecs)
        self.channels: Registry[ChannelType] = Registry("channel")
        self.tools: Registry[ToolType] = Registry("tool")
        self.loaders: Registry[LoaderType] = Registry("knowledge loader")
        self.embeddings: Registry[EmbeddingsType] = Registry("embeddings")
        self.providers: Registry[ProviderType] = Registry("integration provider")
        self.job_kinds: Registry[JobKind] = Registry("job")
        # Per event hook, each implementing plugin's name and a hook caller limited to it,
        # in pluggy's call order; built by collect() so emitting is a list walk.
        self._event_callers: dict[str, list[tuple[str, EventCaller]]] = {name: [] for name in hookspecs.EVENT_HOOKS}

    def register(self, plugin: object, name: str) -> None:
        """Register one plugin object or module; its hook implementations are checked now."""
        try:
            self.manager.register(plugin, name=name)
            self.manager.check_pending()
        except pluggy.PluginValidationError as exc:
            self.manager.unregister(name=name)
            raise PluginError(f"plugin {name!r} does not match the hook specifications: {exc}") from None
        except ValueError as exc:
            raise PluginError(f"plugin {name!r} could not be registered: {exc}") from None

    def collect(self) -> None:
        """Call the registration hooks of every plugin and fill the registries."""
        for hook_name, registry, expected in (
            ("register_channels", self.channels, ChannelType),
            ("register_tools", self.tools, ToolType),
            ("register_knowledge_loaders", self.loaders, LoaderType),
            ("register_embeddings", self.embeddings, EmbeddingsType),
            ("register_integration_providers", self.providers, ProviderType),
            ("register_job_kinds", self.job_kinds, JobKind),
        ):
            hook = getattr(self.manager.hook, hook_name)
            for impl in hook.get_hookimpls():
                try:
                    items = impl.function()
                except Exception as exc:  # a broken plugin stops start-up, named
                    raise PluginError(f"plugin {impl.plugin_name!r} failed in {hook_name}(): {exc!r}") from exc
                for item in _as_list(items, impl.plugin_name, hook_name):
                    if not isinstance(item, expected):
                        raise PluginError(
                            f"plugin {impl.plugin_name!r}: {hook_name}() must return {expected.__name__} "
                            f"objects, got {type(item).__name__}"
                        )
                    registry.add(item, impl.plugin_name)  # type: ignore[arg-type]
        self._check_default_embeddings()
        self._collect_event_callers()

    def _check_default_embeddings(self) -> None:
        defaults = [item.name for item in self.embeddings if item.default]
        if len(defaults) > 1:
            which = ", ".join(f"{name!r} (plugin {self.embeddings.owners[name]!r})" for name in defaults)
            raise PluginError(
                f"several embeddings types say they are the default: {which}; at most one may set default=True"
            )

    @property
    def default_embeddings(self) -> EmbeddingsType | None:
        """The embeddings type a knowledge base gets when it names none (None: it must name one)."""
        return next((item for item in self.embeddings if item.default), None)

    def _collect_event_callers(self) -> None:
        """One hook caller per (event hook, implementing plugin), so that a plugin's failure
        can be caught and named without stopping the others (a plain hook call stops at the
        first exception)."""
        everyone = self.manager.get_plugins()
        for hook_name in hookspecs.EVENT_HOOKS:
            hook = getattr(self.manager.hook, hook_name)
            callers: list[tuple[str, EventCaller]] = []
            for impl in reversed(hook.get_hookimpls()):  # pluggy's call order
                others = [plugin for plugin in everyone if plugin is not impl.plugin]
                callers.append((impl.plugin_name, self.manager.subset_hook_caller(hook_name, others)))
            self._event_callers[hook_name] = callers

    def has_listeners(self, hook_name: str) -> bool:
        """Whether any plugin implements the event hook (so callers can skip building its event)."""
        return bool(self._event_callers[hook_name])

    async def emit(self, hook_name: str, **kwargs: Any) -> None:
        """Call an event hook on every plugin, through pluggy, awaiting async implementations.

        One plugin's failure is logged with its name and does not stop the others or the
        conversation: notifications must never lose a customer's message.
        """
        for plugin_name, call in self._event_callers[hook_name]:
            try:
                for result in call(**kwargs):
                    if inspect.isawaitable(result):
                        await result
            except Exception:
                log.exception("plugin %r failed handling %s", plugin_name, hook_name)

    def describe(self) -> list[dict[str, Any]]:
        """What each loaded plugin registers (for ``callable plugins``)."""
        rows = []
        for name, _plugin in sorted(self.manager.list_name_plugin(), key=lambda pair: pair[0]):
            if name == hookspecs.PROJECT_NAME:
                continue
            provides = {
                registry.kind: sorted(type_name for type_name, owner in registry.owners.items() if owner == name)
                for registry in (self.channels, self.tools, self.loaders, self.embeddings, self.providers, self.job_kinds)
            }
            rows.append({"plugin": name, "provides": {k: v for k, v in provides.items() if v}})
        return rows


    def catalog(self) -> dict[str, list[dict[str, Any]]]:
        """What a person can choose from, with the JSON Schema of each one's settings: tool
        types, channel types, integration providers (their public and secret field names)
        and source kinds. Forms are generated from these, so a third-party plugin's type
        gets one with no code of its own (the admin API serves this; the dashboard reads it)."""
        return {
            "tools": [
                {"type": tool.name, "description": tool.description, "config_schema": tool.config_schema.model_json_schema()}
                for tool in sorted(self.tools, key=lambda item: item.name)
            ],
            "channels": [
                {"kind": channel.name, "description": channel.description,
                 "config_schema": channel.config_schema.model_json_schema()}
                for channel in sorted(self.channels, key=lambda item: item.name)
            ],
            "providers": [
                {"provider": provider.name, "description": provider.description,
                 "public_schema": provider.public.model_json_schema(), "secret_fields": list(provider.secret_fields),
                 "required_secrets": sorted(provider.required_secrets), "checked": provider.verify is not None}
                for provider in sorted(self.providers, key=lambda item: item.name)
            ],
            "sources": [
                {"kind": loader.name, "description": loader.description,
                 "options_schema": loader.options_schema.model_json_schema()}
                for loader in sorted(self.loaders, key=lambda item: item.name)
            ],
        }


def _as_list(items: object, plugin_name: str, hook_name: str) -> Sequence[Any]:
    if items is None:
        return []
    if isinstance(items, (list, tuple)):
        return items
    raise PluginError(f"plugin {plugin_name!r}: {hook_name}() must return a list, got {type(items).__name__}")


def load_plugins(*, autoload: bool = True, extra: Iterable[tuple[str, object]] = ()) -> Plugins:
    """Load built-in plugins, then (unless ``autoload`` is off) third-party entry points, then ``extra``.

    ``extra`` is ``(name, plugin)`` pairs registered directly: how tests and embedding
    applications add a plugin without packaging it.
    """
    plugins = Plugins()
    plugins.register(core_providers, core_providers.PLUGIN_NAME)
    plugins.register(core_test_channel, core_test_channel.PLUGIN_NAME)
    # The same distribution can be visible twice (an installed copy and an in-tree build on
    # sys.path); an identical (name, target) pair is one plugin, not a duplicate.
    unique = {(ep.name, ep.value): ep for ep in entry_points(group=ENTRY_POINT_GROUP)}
    for entry_point in sorted(unique.values(), key=lambda ep: ep.name):
        dist_name = entry_point.dist.name if entry_point.dist else ""
        is_builtin = _normalise(dist_name) == _normalise(DISTRIBUTION)
        if not is_builtin and not autoload:
            continue
        try:
            plugin = entry_point.load()
        except Exception as exc:
            raise PluginError(f"plugin {entry_point.name!r} ({entry_point.value}) failed to import: {exc!r}") from exc
        plugins.register(plugin, entry_point.name)
    for name, plugin in extra:
        if isinstance(plugin, str):
            try:
                plugin = importlib.import_module(plugin)
            except Exception as exc:
                raise PluginError(f"plugin {name!r} failed to import: {exc!r}") from exc
        plugins.register(plugin, name)
    plugins.collect()
    return plugins


def _normalise(name: str) -> str:
    return name.lower().replace("_", "-")
