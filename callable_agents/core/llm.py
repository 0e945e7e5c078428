"""Chat model and embeddings factories: resolved model settings in, LangChain objects out.

This module does not know where keys come from (the workspace's integration, through the
vault, is wired in by the caller); it validates the settings an agent stores in
``Agent.model_settings``, and builds ``langchain_openai`` objects for OpenAI or any
OpenAI-compatible server (``base_url`` + key).

Fallbacks: the agent graph binds tools to the model, and ``model.with_fallbacks(...)``
returns a ``RunnableWithFallbacks``, which has no ``bind_tools``. So the factories hand back
plain chat models — :func:`build_chat_models` gives the primary then the fallback — and
:func:`bind_tools_with_fallbacks` binds the same tools to each and chains them, which keeps
tool binding and fallback in one place instead of in every caller.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import openai
from langchain_core.embeddings import Embeddings
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessage
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from langchain_openai import ChatOpenAI, OpenAIEmbeddings
from pydantic import SecretStr

from callable_agents.core.chat_completions import PlainChatCompletions
from callable_agents.core.errors import ConfigError, InvalidInput

__all__ = [
    "FALLBACK_ERRORS",
    "MODEL_SETTINGS_FIELDS",
    "OFFLINE_MODEL_NAME",
    "ModelConfig",
    "bind_tools_with_fallbacks",
    "build_chat_model",
    "build_chat_models",
    "build_embeddings",
    "is_offline",
    "validate_model_settings",
]

OFFLINE_MODEL_NAME = "offline"
"""The model name that means "no LLM": the agent answers extractively from its knowledge."""

MODEL_SETTINGS_FIELDS = frozenset(
    {"integration", "model", "temperature", "fallback_model", "max_tokens", "timeout", "max_retries", "max_tool_rounds", "accepts_images"}
)
"""The keys an agent's ``model_settings`` may hold."""

FALLBACK_ERRORS: tuple[type[BaseException], ...] = (openai.APIError,)
"""Errors that make the fallback model take over: HTTP errors, timeouts, lost connections.

Programming errors (a bad tool schema, a ``TypeError``) are not masked by a second try.
"""

_MAX_TEMPERATURE = 2.0


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to reach one chat or embeddings model.

    ``api_key`` is kept as a :class:`~pydantic.SecretStr` and left out of ``repr``; ``None``
    lets the OpenAI client read ``OPENAI_API_KEY`` from the environment. ``base_url`` points
    at an OpenAI-compatible server (``None``: api.openai.com). Invalid values raise
    :class:`InvalidInput` naming the field.
    """

    model: str
    api_key: SecretStr | str | None = field(default=None, repr=False)
    base_url: str | None = None
    organization: str | None = None
    temperature: float = 0.2
    timeout: float = 30
    max_retries: int = 1
    fallback_model: str | None = None
    max_tokens: int | None = None

    def __post_init__(self) -> None:
        if isinstance(self.api_key, str):
            object.__setattr__(self, "api_key", SecretStr(self.api_key))
        if self.api_key is not None and not isinstance(self.api_key, SecretStr):
            raise InvalidInput(f"api_key: expected a string, got {type(self.api_key).__name__}")
        if self.api_key is not None and not self.api_key.get_secret_value().strip():
            raise InvalidInput("api_key: expected a non-empty key, got an empty string")
        _check_model_name("model", self.model)
        if self.model.strip().lower() == OFFLINE_MODEL_NAME:
            raise InvalidInput(f"model: {OFFLINE_MODEL_NAME!r} means no model; check is_offline() before building one")
        if self.fallback_model is not None:
            _check_model_name("fallback_model", self.fallback_model)
            if self.fallback_model == self.model:
                raise InvalidInput(f"fallback_model: expected a model other than {self.model!r}")
        if self.base_url is not None and (
            not isinstance(self.base_url, str) or not self.base_url.startswith(("http://", "https://"))
        ):
            raise InvalidInput(f"base_url: expected an http:// or https:// URL, got {self.base_url!r}")
        if self.organization is not None and (not isinstance(self.organization, str) or not self.organization):
            raise InvalidInput("organization: expected a non-empty string or nothing")
        _check_number("temperature", self.temperature, minimum=0.0, maximum=_MAX_TEMPERATURE)
        _check_number("timeout", self.timeout, minimum=0.0, exclusive_minimum=True)
        _check_integer("max_retries", self.max_retries, minimum=0)
        if self.max_tokens is not None:
            _check_integer("max_tokens", self.max_tokens, minimum=1)

    @property
    def secret_api_key(self) -> SecretStr | None:
        """``api_key`` as ``__post_init__`` left it: a string given is kept as a SecretStr."""
        key = self.api_key
        return SecretStr(key) if isinstance(key, str) else key

    @classmethod
    def from_model_settings(
        cls,
        model_settings: Mapping[str, Any],
        *,
        api_key: SecretStr | str | None = None,
        base_url: str | None = None,
        organization: str | None = None,
    ) -> ModelConfig:
        """Build a config from an agent's ``model_settings`` plus resolved credentials.

        Raises :class:`InvalidInput` (field named ``model_settings.<key>``) for bad settings,
        including offline settings, which have no model to build.
        """
        settings = validate_model_settings(model_settings)
        if is_offline(settings):
            raise InvalidInput("model_settings.model: no model is configured (offline mode)")
        optional = {
            key: settings[key]
            for key in ("temperature", "timeout", "max_retries", "max_tokens", "fallback_model")
            if settings.get(key) is not None
        }
        return cls(
            model=settings["model"], api_key=api_key, base_url=base_url, organization=organization, **optional
        )


def is_offline(model_settings: Mapping[str, Any] | None) -> bool:
    """True when no model is configured: no settings, an empty model name or ``"offline"``."""
    if not model_settings:
        return True
    model = model_settings.get("model")
    if model is None:
        return True
    return isinstance(model, str) and model.strip().lower() in ("", OFFLINE_MODEL_NAME)


def validate_model_settings(model_settings: Mapping[str, Any]) -> dict[str, Any]:
    """Check an agent's ``model_settings`` and return them normalised (names stripped).

    Used when an agent is saved, so a typo or an out-of-range value is reported at once
    with the field at fault, instead of when the first customer writes.
    """
    if not isinstance(model_settings, Mapping):
        raise InvalidInput(f"model_settings: expected an object, got {type(model_settings).__name__}")
    unknown = sorted(set(model_settings) - MODEL_SETTINGS_FIELDS)
    if unknown:
        raise InvalidInput(
            f"model_settings.{unknown[0]}: unknown setting; expected one of {', '.join(sorted(MODEL_SETTINGS_FIELDS))}"
        )
    settings = dict(model_settings)
    for key in ("integration", "model", "fallback_model"):
        value = settings.get(key)
        if value is not None and not isinstance(value, str):
            raise InvalidInput(f"model_settings.{key}: expected a string, got {type(value).__name__}")
        if isinstance(value, str):
            settings[key] = value.strip() or None
    if settings.get("integration") and is_offline(settings):
        raise InvalidInput(
            "model_settings.model: expected a model name (e.g. 'gpt-4o-mini') when an integration is set"
        )
    if is_offline(settings) and settings.get("fallback_model"):
        raise InvalidInput("model_settings.fallback_model: needs a primary model; set model_settings.model first")
    prefixed = "model_settings."
    if settings.get("temperature") is not None:
        _check_number(prefixed + "temperature", settings["temperature"], minimum=0.0, maximum=_MAX_TEMPERATURE)
    if settings.get("timeout") is not None:
        _check_number(prefixed + "timeout", settings["timeout"], minimum=0.0, exclusive_minimum=True)
    if settings.get("max_retries") is not None:
        _check_integer(prefixed + "max_retries", settings["max_retries"], minimum=0)
    if settings.get("max_tokens") is not None:
        _check_integer(prefixed + "max_tokens", settings["max_tokens"], minimum=1)
    if settings.get("accepts_images") is not None and not isinstance(settings["accepts_images"], bool):
        raise InvalidInput(f"{prefixed}accepts_images: expected true or false, got {settings['accepts_images']!r}")
    if settings.get("max_tool_rounds") is not None:
        _check_integer(prefixed + "max_tool_rounds", settings["max_tool_rounds"], minimum=1)
        if settings["max_tool_rounds"] > 10:
            raise InvalidInput(f"{prefixed}max_tool_rounds: expected a whole number from 1 to 10, got {settings['max_tool_rounds']!r}")
    if settings.get("fallback_model") and settings["fallback_model"] == settings.get("model"):
        raise InvalidInput(f"model_settings.fallback_model: expected a model other than {settings['model']!r}")
    return settings


def build_chat_model(
    config: ModelConfig, *, model: str | None = None, http_client: httpx.AsyncClient | None = None
) -> ChatOpenAI:
    """The chat model for ``config`` (its primary model, or ``model`` if given).

    ``stream_usage`` is on so token counts arrive when streaming too. ``http_client``: the
    connections to use, the runtime's (without it, langchain-openai shares one client per
    base URL across the whole process, whatever event loop made its connections: a later
    loop reusing one of them fails with ``RuntimeError``). Raises :class:`ConfigError` when
    there is no API key and ``OPENAI_API_KEY`` is unset.
    """
    _require_api_key(config)
    options: dict[str, Any] = {}
    if config.max_tokens is not None:
        options["max_tokens"] = config.max_tokens
    chat_model = ChatOpenAI(
        model=model or config.model,
        api_key=config.secret_api_key,
        base_url=config.base_url,
        organization=config.organization,
        temperature=config.temperature,
        timeout=config.timeout,
        max_retries=config.max_retries,
        stream_usage=True,
        http_async_client=http_client,
        **options,
    )
    # Same client, same settings; only the chat completions call skips the request transform.
    chat_model.async_client = PlainChatCompletions(chat_model.root_async_client)
    return chat_model


def build_chat_models(config: ModelConfig, *, http_client: httpx.AsyncClient | None = None) -> list[ChatOpenAI]:
    """The primary chat model, then the fallback model if one is configured.

    The fallback shares every setting but the model name.
    """
    models = [build_chat_model(config, http_client=http_client)]
    if config.fallback_model:
        models.append(build_chat_model(config, model=config.fallback_model, http_client=http_client))
    return models


def bind_tools_with_fallbacks(
    models: Sequence[BaseChatModel],
    tools: Sequence[BaseTool | dict[str, Any]] = (),
    **bind_kwargs: Any,
) -> Runnable[LanguageModelInput, AIMessage]:
    """Bind ``tools`` to each model and chain them: the next one answers if one fails.

    Only :data:`FALLBACK_ERRORS` (API and connection errors, timeouts) trigger the next
    model; if every model fails, the primary's error is raised. With no tools, the models
    are chained as they are.
    """
    if not models:
        raise ValueError("models: expected at least one chat model")
    bound: list[Runnable[LanguageModelInput, AIMessage]] = [
        model.bind_tools(list(tools), **bind_kwargs) if tools else model for model in models
    ]
    if len(bound) == 1:
        return bound[0]
    return bound[0].with_fallbacks(bound[1:], exceptions_to_handle=FALLBACK_ERRORS)


def build_embeddings(config: ModelConfig, *, dimensions: int | None = None) -> Embeddings:
    """OpenAI (or OpenAI-compatible) embeddings for ``config.model``.

    ``check_embedding_ctx_length=False`` sends raw text: the default tokenises with tiktoken
    first, which downloads its encodings and sends token ids that most OpenAI-compatible
    servers reject. ``dimensions`` shortens ``text-embedding-3`` vectors.
    """
    _require_api_key(config)
    if dimensions is not None:
        _check_integer("dimensions", dimensions, minimum=1)
    return OpenAIEmbeddings(
        model=config.model,
        api_key=config.secret_api_key,
        base_url=config.base_url,
        organization=config.organization,
        timeout=config.timeout,
        max_retries=config.max_retries,
        dimensions=dimensions,
        check_embedding_ctx_length=False,
    )


# --------------------------------------------------------------------------- checks


def _require_api_key(config: ModelConfig) -> None:
    if config.api_key is None and not os.environ.get("OPENAI_API_KEY"):
        raise ConfigError(
            f"api_key: no API key for model {config.model!r}; connect an OpenAI integration "
            "or set OPENAI_API_KEY"
        )


def _check_model_name(name: str, value: object) -> None:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"{name}: expected a model name such as 'gpt-4o-mini', got {value!r}")


def _check_number(
    name: str,
    value: object,
    *,
    minimum: float,
    maximum: float | None = None,
    exclusive_minimum: bool = False,
) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidInput(f"{name}: expected a number, got {value!r}")
    too_small = value <= minimum if exclusive_minimum else value < minimum
    if too_small or (maximum is not None and value > maximum):
        bounds = f"greater than {minimum:g}" if exclusive_minimum else f"at least {minimum:g}"
        if maximum is not None:
            bounds = f"between {minimum:g} and {maximum:g}"
        raise InvalidInput(f"{name}: expected a number {bounds}, got {value!r}")


def _check_integer(name: str, value: object, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"{name}: expected a whole number, got {value!r}")
    if value < minimum:
        raise InvalidInput(f"{name}: expected a whole number of at least {minimum}, got {value!r}")
