"""The chat model / embeddings factories, driven through langchain-openai against the fake."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, SystemMessage, ToolMessage
from langchain_core.tools import tool
from pydantic import SecretStr

from callable_agents.core.errors import ConfigError, InvalidInput
from callable_agents.core.llm import (
    OFFLINE_MODEL_NAME,
    ModelConfig,
    bind_tools_with_fallbacks,
    build_chat_model,
    build_chat_models,
    build_embeddings,
    is_offline,
    validate_model_settings,
)
from callable_agents.testing.openai_server import FakeOpenAI, embed_text

KEY = "sk-workspace-key-7f3a9c"


@tool
def lookup_order(order_id: str) -> str:
    """Look up an order's delivery status by its id."""
    return f"Order {order_id} ships tomorrow."


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


def config_for(fake: FakeOpenAI, **overrides: Any) -> ModelConfig:
    values: dict[str, Any] = {"model": "gpt-4o-mini", "api_key": KEY, "base_url": fake.base_url, "max_retries": 0}
    values.update(overrides)
    return ModelConfig(**values)


# --------------------------------------------------------------------------- chat models


async def test_plain_answer_with_configured_request(fake: FakeOpenAI) -> None:
    fake.queue_reply("We open at 9am.")
    model = build_chat_model(config_for(fake, temperature=0.7, max_tokens=120))

    answer = await model.ainvoke([SystemMessage("Be brief."), HumanMessage("When do you open?")])

    assert isinstance(answer, AIMessage)
    assert answer.content == "We open at 9am."
    assert answer.usage_metadata is not None and answer.usage_metadata["output_tokens"] == 5
    [request] = fake.chat_requests
    assert request.bearer_token == KEY
    assert request.json_body["model"] == "gpt-4o-mini"
    assert request.json_body["temperature"] == 0.7
    assert request.json_body["max_completion_tokens"] == 120
    assert request.system_prompt == "Be brief."
    assert request.last_user_message == "When do you open?"


def test_sync_invoke_and_organization_header(fake: FakeOpenAI) -> None:
    fake.queue_reply("hi")
    model = build_chat_model(config_for(fake, organization="org-acme"))
    assert model.invoke("hello").content == "hi"
    assert fake.chat_requests[0].headers["openai-organization"] == "org-acme"


async def test_tool_call_round_trip(fake: FakeOpenAI) -> None:
    fake.queue_tool_call("lookup_order", {"order_id": "A17"})
    fake.queue_reply("Your order A17 ships tomorrow.")
    model = build_chat_model(config_for(fake)).bind_tools([lookup_order])
    history: list[Any] = [HumanMessage("Where is my order A17?")]

    call_message = await model.ainvoke(history)
    assert isinstance(call_message, AIMessage)
    [call] = call_message.tool_calls
    assert (call["name"], call["args"]) == ("lookup_order", {"order_id": "A17"})
    assert call["id"] and call["id"].startswith("call_")

    result = await lookup_order.ainvoke(call)
    assert isinstance(result, ToolMessage)
    final = await model.ainvoke([*history, call_message, result])
    assert final.content == "Your order A17 ships tomorrow."

    first, second = fake.chat_requests
    assert first.tool_names == ["lookup_order"]
    assert first.tools[0]["function"]["parameters"]["required"] == ["order_id"]
    sent_call, sent_result = second.messages[1], second.messages[2]
    assert sent_call["role"] == "assistant"
    assert sent_call["tool_calls"][0]["id"] == call["id"]
    assert sent_call["tool_calls"][0]["function"]["name"] == "lookup_order"
    assert sent_result == {"role": "tool", "tool_call_id": call["id"], "content": "Order A17 ships tomorrow."}


async def test_streaming_tokens_arrive_in_order_with_usage(fake: FakeOpenAI) -> None:
    fake.queue_reply("Opening hours are nine to five, Monday to Friday.", chunk_delay=0.01)
    model = build_chat_model(config_for(fake))

    pieces: list[str] = []
    merged: AIMessageChunk | None = None
    async for chunk in model.astream("When are you open?"):
        assert isinstance(chunk, AIMessageChunk)
        if chunk.content:
            pieces.append(str(chunk.content))
        merged = chunk if merged is None else merged + chunk

    assert pieces == ["Opening", " hours", " are", " nine", " to", " five,", " Monday", " to", " Friday."]
    assert merged is not None and merged.usage_metadata is not None
    assert merged.usage_metadata["output_tokens"] == 11
    request = fake.chat_requests[0]
    assert request.stream and request.json_body["stream_options"] == {"include_usage": True}


async def test_streamed_tool_call_is_assembled(fake: FakeOpenAI) -> None:
    fake.queue_tool_call("lookup_order", {"order_id": "B2"})
    model = build_chat_model(config_for(fake)).bind_tools([lookup_order])
    merged: AIMessageChunk | None = None
    async for chunk in model.astream("Where is B2?"):
        merged = chunk if merged is None else merged + chunk
    assert merged is not None
    assert [(c["name"], c["args"]) for c in merged.tool_calls] == [("lookup_order", {"order_id": "B2"})]


async def test_server_error_raises_without_retries(fake: FakeOpenAI) -> None:
    fake.queue_error(500)
    fake.queue_reply("never reached")
    with pytest.raises(openai.InternalServerError):
        await build_chat_model(config_for(fake, max_retries=0)).ainvoke("hi")
    assert len(fake.chat_requests) == 1


async def test_max_retries_retries_a_server_error(fake: FakeOpenAI) -> None:
    fake.queue_error(500)
    fake.queue_reply("second time lucky")
    answer = await build_chat_model(config_for(fake, max_retries=1)).ainvoke("hi")
    assert answer.content == "second time lucky"
    assert len(fake.chat_requests) == 2


async def test_timeout_raises(fake: FakeOpenAI) -> None:
    fake.queue_delay(5)
    started = time.monotonic()
    with pytest.raises(openai.APITimeoutError):
        await build_chat_model(config_for(fake, timeout=0.3)).ainvoke("hi")
    assert time.monotonic() - started < 2


async def test_fallback_model_answers_when_the_primary_errors(fake: FakeOpenAI) -> None:
    config = config_for(fake, fallback_model="gpt-4o")
    models = build_chat_models(config)
    assert [m.model_name for m in models] == ["gpt-4o-mini", "gpt-4o"]
    fake.queue_error(503)
    fake.queue_tool_call("lookup_order", {"order_id": "C3"})

    answer = await bind_tools_with_fallbacks(models, [lookup_order]).ainvoke("Where is C3?")

    assert answer.tool_calls[0]["args"] == {"order_id": "C3"}
    assert [r.model for r in fake.chat_requests] == ["gpt-4o-mini", "gpt-4o"]
    assert all(r.tool_names == ["lookup_order"] for r in fake.chat_requests)
    assert all(r.bearer_token == KEY for r in fake.chat_requests)


async def test_fallback_after_a_timeout_and_when_streaming(fake: FakeOpenAI) -> None:
    runnable = bind_tools_with_fallbacks(build_chat_models(config_for(fake, fallback_model="gpt-4o", timeout=0.3)))
    fake.queue_delay(5)
    fake.queue_reply("fallback was quick")
    assert (await runnable.ainvoke("hi")).content == "fallback was quick"

    fake.queue_error(500)
    fake.queue_reply("streamed by the fallback")
    text = "".join([str(chunk.content) async for chunk in runnable.astream("hi")])
    assert text == "streamed by the fallback"
    assert [r.model for r in fake.chat_requests] == ["gpt-4o-mini", "gpt-4o", "gpt-4o-mini", "gpt-4o"]


async def test_both_models_failing_raises_the_primary_error(fake: FakeOpenAI) -> None:
    fake.queue_error(500)
    fake.queue_error(429)
    runnable = bind_tools_with_fallbacks(build_chat_models(config_for(fake, fallback_model="gpt-4o")))
    with pytest.raises(openai.InternalServerError):
        await runnable.ainvoke("hi")
    assert len(fake.chat_requests) == 2


def test_bind_tools_with_fallbacks_needs_a_model() -> None:
    with pytest.raises(ValueError, match="models"):
        bind_tools_with_fallbacks([])


def test_single_model_is_bound_directly(fake: FakeOpenAI) -> None:
    fake.queue_reply("ok")
    runnable = bind_tools_with_fallbacks(build_chat_models(config_for(fake)), [lookup_order])
    assert runnable.invoke("hi").content == "ok"
    assert fake.chat_requests[0].tool_names == ["lookup_order"]


# --------------------------------------------------------------------------- secrets


def test_api_key_goes_in_the_header_and_nowhere_else(fake: FakeOpenAI) -> None:
    config = config_for(fake)
    assert isinstance(config.api_key, SecretStr)
    assert config.api_key.get_secret_value() == KEY
    assert KEY not in repr(config) and KEY not in str(config)
    model = build_chat_model(config)
    assert KEY not in repr(model)
    fake.queue_reply("ok")
    model.invoke("hi")
    assert fake.chat_requests[0].authorization == f"Bearer {KEY}"


def test_environment_key_is_used_when_none_is_given(fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-environment")
    build_chat_model(config_for(fake, api_key=None)).invoke("hi")
    assert fake.chat_requests[0].bearer_token == "sk-from-environment"


def test_missing_api_key_is_a_config_error(fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    config = config_for(fake, api_key=None)
    with pytest.raises(ConfigError, match=r"^api_key: no API key for model 'gpt-4o-mini'"):
        build_chat_model(config)
    with pytest.raises(ConfigError, match=r"^api_key:"):
        build_embeddings(config)


# --------------------------------------------------------------------------- embeddings


async def test_embeddings_against_the_fake(fake: FakeOpenAI) -> None:
    embeddings = build_embeddings(config_for(fake, model="text-embedding-3-small"))
    texts = ["opening hours nine to five", "refunds within 30 days"]

    documents = await embeddings.aembed_documents(texts)
    query = embeddings.embed_query("what are the opening hours")

    assert [len(v) for v in documents] == [64, 64]
    assert documents[0] == pytest.approx(embed_text(texts[0]), abs=1e-6)
    similarity = [sum(a * b for a, b in zip(query, doc, strict=True)) for doc in documents]
    assert similarity[0] > similarity[1]
    assert math.isclose(sum(v * v for v in query), 1.0, rel_tol=1e-5)
    batch, single = fake.embedding_requests
    assert batch.json_body["input"] == texts  # raw text, not tiktoken ids
    assert batch.json_body["model"] == "text-embedding-3-small"
    assert single.bearer_token == KEY


def test_embedding_dimensions_are_requested(fake: FakeOpenAI) -> None:
    vector = build_embeddings(config_for(fake, model="text-embedding-3-small"), dimensions=16).embed_query("x")
    assert len(vector) == 16
    assert fake.embedding_requests[0].json_body["dimensions"] == 16
    with pytest.raises(InvalidInput, match=r"^dimensions: expected a whole number of at least 1, got 0"):
        build_embeddings(config_for(fake), dimensions=0)


def test_embedding_errors_surface(fake: FakeOpenAI) -> None:
    fake.queue_error(500, endpoint="embeddings")
    with pytest.raises(openai.InternalServerError):
        build_embeddings(config_for(fake, model="text-embedding-3-small")).embed_documents(["x"])


# --------------------------------------------------------------------------- settings


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"temperature": -0.1}, r"^temperature: expected a number between 0 and 2, got -0.1$"),
        ({"temperature": 2.5}, r"^temperature: expected a number between 0 and 2, got 2.5$"),
        ({"temperature": "hot"}, r"^temperature: expected a number, got 'hot'$"),
        ({"temperature": math.nan}, r"^temperature: expected a number, got nan$"),
        ({"temperature": True}, r"^temperature: expected a number, got True$"),
        ({"timeout": 0}, r"^timeout: expected a number greater than 0, got 0$"),
        ({"timeout": -5}, r"^timeout: expected a number greater than 0"),
        ({"max_retries": -1}, r"^max_retries: expected a whole number of at least 0, got -1$"),
        ({"max_retries": 1.5}, r"^max_retries: expected a whole number, got 1.5$"),
        ({"max_tokens": 0}, r"^max_tokens: expected a whole number of at least 1, got 0$"),
        ({"model": ""}, r"^model: expected a model name"),
        ({"model": "   "}, r"^model: expected a model name"),
        ({"model": None}, r"^model: expected a model name"),
        ({"model": "offline"}, r"^model: 'offline' means no model"),
        ({"fallback_model": ""}, r"^fallback_model: expected a model name"),
        ({"fallback_model": "gpt-4o-mini"}, r"^fallback_model: expected a model other than 'gpt-4o-mini'$"),
        ({"base_url": "ftp://example.com"}, r"^base_url: expected an http:// or https:// URL"),
        ({"organization": ""}, r"^organization: expected a non-empty string"),
        ({"api_key": ""}, r"^api_key: expected a non-empty key, got an empty string$"),
        ({"api_key": 12345}, r"^api_key: expected a string, got int$"),
    ],
)
def test_bad_model_config_names_the_field(overrides: dict[str, Any], message: str) -> None:
    values: dict[str, Any] = {"model": "gpt-4o-mini", "api_key": KEY}
    values.update(overrides)
    with pytest.raises(InvalidInput, match=message) as raised:
        ModelConfig(**values)
    assert KEY not in str(raised.value)


def test_model_config_defaults() -> None:
    config = ModelConfig(model="gpt-4o-mini")
    assert (config.temperature, config.timeout, config.max_retries) == (0.2, 30, 1)
    assert config.api_key is None and config.fallback_model is None and config.max_tokens is None
    with pytest.raises(AttributeError):
        config.model = "other"  # type: ignore[misc]


def test_from_model_settings_combines_settings_and_credentials(fake: FakeOpenAI) -> None:
    settings = {"integration": "openai", "model": " gpt-4o-mini ", "temperature": 0, "fallback_model": "gpt-4o",
                "max_tokens": 300, "timeout": 10, "max_retries": 2}
    config = ModelConfig.from_model_settings(settings, api_key=KEY, base_url=fake.base_url, organization="org-1")
    assert config == ModelConfig(model="gpt-4o-mini", api_key=KEY, base_url=fake.base_url, organization="org-1",
                                 temperature=0, fallback_model="gpt-4o", max_tokens=300, timeout=10, max_retries=2)
    minimal = ModelConfig.from_model_settings({"model": "gpt-4o-mini"})
    assert minimal.temperature == 0.2
    with pytest.raises(InvalidInput, match=r"^model_settings.model: no model is configured \(offline mode\)$"):
        ModelConfig.from_model_settings({"model": OFFLINE_MODEL_NAME})


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"temperature": 3, "model": "gpt-4o-mini"}, r"^model_settings.temperature: expected a number between 0 and 2"),
        ({"temperature": -1, "model": "gpt-4o"}, r"^model_settings.temperature: expected a number between 0 and 2"),
        ({"integration": "openai", "model": ""}, r"^model_settings.model: expected a model name .* integration"),
        ({"integration": "openai"}, r"^model_settings.model: expected a model name"),
        ({"model": "gpt-4o-mini", "temprature": 0.5}, r"^model_settings.temprature: unknown setting; expected one of"),
        ({"model": 4}, r"^model_settings.model: expected a string, got int$"),
        ({"model": "", "fallback_model": "gpt-4o"}, r"^model_settings.fallback_model: needs a primary model"),
        ({"model": "gpt-4o", "fallback_model": "gpt-4o"}, r"^model_settings.fallback_model: expected a model other"),
        ({"model": "gpt-4o", "max_retries": "3"}, r"^model_settings.max_retries: expected a whole number, got '3'$"),
        ({"model": "gpt-4o", "timeout": 0}, r"^model_settings.timeout: expected a number greater than 0"),
        ({"model": "gpt-4o", "max_tokens": -3}, r"^model_settings.max_tokens: expected a whole number of at least 1"),
    ],
)
def test_bad_model_settings_name_the_field(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        validate_model_settings(settings)
    with pytest.raises(InvalidInput, match=message):
        ModelConfig.from_model_settings(settings, api_key=KEY)


def test_model_settings_must_be_an_object() -> None:
    with pytest.raises(InvalidInput, match=r"^model_settings: expected an object, got list$"):
        validate_model_settings(["gpt-4o"])  # type: ignore[arg-type]


def test_valid_settings_are_normalised() -> None:
    assert validate_model_settings({"integration": " openai ", "model": " gpt-4o ", "temperature": 1.5}) == {
        "integration": "openai",
        "model": "gpt-4o",
        "temperature": 1.5,
    }
    assert validate_model_settings({}) == {}
    offline = {"model": "offline", "integration": None}
    assert validate_model_settings(offline) == offline


@pytest.mark.parametrize(
    ("settings", "offline"),
    [
        (None, True),
        ({}, True),
        ({"model": ""}, True),
        ({"model": "  "}, True),
        ({"model": None, "temperature": 0.3}, True),
        ({"model": "offline"}, True),
        ({"model": "Offline"}, True),
        ({"model": "gpt-4o-mini"}, False),
        ({"model": "gpt-4o-mini", "integration": "openai"}, False),
    ],
)
def test_is_offline(settings: dict[str, Any] | None, offline: bool) -> None:
    assert is_offline(settings) is offline
