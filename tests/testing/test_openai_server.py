"""The fake OpenAI server, driven by the real ``openai`` client (sync and async) and raw HTTP."""

from __future__ import annotations

import base64
import json
import math
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import openai
import pytest

from callable_agents.testing.openai_server import (
    FakeOpenAI,
    ScriptedError,
    ScriptedReply,
    ScriptedToolCall,
    embed_text,
    system_prompt,
)

KEY = "sk-test-fake-openai-0001"
USER = [{"role": "user", "content": "What are your opening hours?"}]


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


def client(fake: FakeOpenAI, **options: Any) -> openai.OpenAI:
    return openai.OpenAI(api_key=KEY, base_url=fake.base_url, max_retries=options.pop("max_retries", 0), **options)


def async_client(fake: FakeOpenAI, **options: Any) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(api_key=KEY, base_url=fake.base_url, max_retries=options.pop("max_retries", 0), **options)


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


# --------------------------------------------------------------------------- chat completions


def test_base_url_is_loopback_v1(fake: FakeOpenAI) -> None:
    assert fake.base_url == f"http://127.0.0.1:{fake.port}/v1"


def test_sync_client_gets_the_queued_reply_with_openai_fields(fake: FakeOpenAI) -> None:
    fake.queue_reply("We open at 9am.")
    completion = client(fake).chat.completions.create(model="gpt-4o-mini", messages=USER)

    assert completion.choices[0].message.content == "We open at 9am."
    assert completion.choices[0].message.role == "assistant"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.id.startswith("chatcmpl-")
    assert completion.object == "chat.completion"
    assert completion.model == "gpt-4o-mini"
    assert abs(completion.created - time.time()) < 60
    assert completion.usage is not None
    assert completion.usage.completion_tokens == 5  # "We", "open", "at", "9am", "."
    assert completion.usage.prompt_tokens > 0
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens


async def test_async_client_and_queue_order(fake: FakeOpenAI) -> None:
    fake.queue_reply("first")
    fake.queue_reply("second")
    api = async_client(fake)
    one = await api.chat.completions.create(model="gpt-4o-mini", messages=USER)
    two = await api.chat.completions.create(model="gpt-4o-mini", messages=USER)
    await api.close()
    assert [one.choices[0].message.content, two.choices[0].message.content] == ["first", "second"]
    assert fake.pending() == 0


def test_requests_are_recorded_with_headers_and_body(fake: FakeOpenAI) -> None:
    messages = [{"role": "system", "content": "Passage: we open at 9am."}, *USER]
    client(fake).chat.completions.create(model="gpt-4o-mini", messages=messages, temperature=0.3)

    [request] = fake.chat_requests
    assert request.method == "POST"
    assert request.path == "/v1/chat/completions"
    assert request.authorization == f"Bearer {KEY}"
    assert request.bearer_token == KEY
    assert request.headers["content-type"] == "application/json"
    assert request.json_body["temperature"] == 0.3
    assert request.model == "gpt-4o-mini"
    assert request.system_prompt == "Passage: we open at 9am."
    assert request.last_user_message == "What are your opening hours?"
    assert "we open at 9am" in request.prompt_text
    assert fake.requests == [request]


def test_default_responder_echoes_the_last_user_message(fake: FakeOpenAI) -> None:
    completion = client(fake).chat.completions.create(model="gpt-4o-mini", messages=USER)
    assert completion.choices[0].message.content == "Echo: What are your opening hours?"


def test_content_parts_are_read_as_text(fake: FakeOpenAI) -> None:
    parts = [{"role": "user", "content": [{"type": "text", "text": "hello "}, {"type": "text", "text": "there"}]}]
    completion = client(fake).chat.completions.create(model="gpt-4o-mini", messages=parts)
    assert completion.choices[0].message.content == "Echo: hello there"


def test_responder_answers_dynamically_when_the_queue_is_empty(fake: FakeOpenAI) -> None:
    def quote_the_passages(request_json: dict[str, Any]) -> str:
        return "From the KB: " + system_prompt(request_json).removeprefix("Passages: ")

    fake.responder = quote_the_passages
    fake.queue_reply("scripted first")
    api = client(fake)
    messages = [{"role": "system", "content": "Passages: Open 9-5."}, *USER]
    first = api.chat.completions.create(model="gpt-4o-mini", messages=messages)
    second = api.chat.completions.create(model="gpt-4o-mini", messages=messages)
    assert first.choices[0].message.content == "scripted first"
    assert second.choices[0].message.content == "From the KB: Open 9-5."


def test_responder_may_return_a_tool_call_or_an_error(fake: FakeOpenAI) -> None:
    answers = iter([
        ScriptedReply(tool_calls=(ScriptedToolCall("handoff", {"reason": "asked"}),)),
        ScriptedError(status=503, message="overloaded"),
    ])
    fake.responder = lambda _body: next(answers)
    api = client(fake)
    completion = api.chat.completions.create(model="gpt-4o-mini", messages=USER)
    assert completion.choices[0].message.tool_calls[0].function.name == "handoff"
    with pytest.raises(openai.InternalServerError) as raised:
        api.chat.completions.create(model="gpt-4o-mini", messages=USER)
    assert raised.value.status_code == 503
    assert "overloaded" in str(raised.value)


def test_a_failing_responder_becomes_a_500_and_is_kept(fake: FakeOpenAI) -> None:
    def broken(_body: dict[str, Any]) -> str:
        raise KeyError("no passages")

    fake.responder = broken
    with pytest.raises(openai.InternalServerError, match="responder raised KeyError"):
        client(fake).chat.completions.create(model="gpt-4o-mini", messages=USER)
    [error] = fake.errors
    assert isinstance(error, KeyError)

    fake.responder = lambda _body: 42  # type: ignore[assignment,return-value]
    with pytest.raises(openai.InternalServerError, match="returned int"):
        client(fake).chat.completions.create(model="gpt-4o-mini", messages=USER)


def test_tool_calls_non_streaming(fake: FakeOpenAI) -> None:
    fake.queue_tool_calls(
        [("lookup_order", {"order_id": "A1"}), ScriptedToolCall("send_info", '{"topic": "hours"}', id="call_fixed")]
    )
    completion = client(fake).chat.completions.create(model="gpt-4o-mini", messages=USER)

    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    first, second = choice.message.tool_calls
    assert first.type == "function" and first.id.startswith("call_")
    assert (first.function.name, json.loads(first.function.arguments)) == ("lookup_order", {"order_id": "A1"})
    assert (second.id, second.function.name, second.function.arguments) == (
        "call_fixed", "send_info", '{"topic": "hours"}',
    )


def test_malformed_tool_arguments_are_sent_verbatim(fake: FakeOpenAI) -> None:
    fake.queue_tool_call("lookup_order", '{"order_id": ')
    completion = client(fake).chat.completions.create(model="gpt-4o-mini", messages=USER)
    assert completion.choices[0].message.tool_calls[0].function.arguments == '{"order_id": '


def test_n_choices(fake: FakeOpenAI) -> None:
    fake.queue_reply("same")
    completion = client(fake).chat.completions.create(model="gpt-4o-mini", messages=USER, n=3)
    assert [(c.index, c.message.content) for c in completion.choices] == [(0, "same"), (1, "same"), (2, "same")]


# --------------------------------------------------------------------------- streaming


def test_streaming_text_arrives_in_order_with_usage_last(fake: FakeOpenAI) -> None:
    text = "We open at nine, and close at five."
    fake.queue_reply(text)
    stream = client(fake).chat.completions.create(
        model="gpt-4o-mini", messages=USER, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)

    pieces = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert pieces == ["We", " open", " at", " nine,", " and", " close", " at", " five."]
    assert chunks[0].choices[0].delta.role == "assistant"
    assert {c.id for c in chunks} == {chunks[0].id} and chunks[0].object == "chat.completion.chunk"
    finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finish == ["stop"]
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 10
    assert all(c.usage is None for c in chunks[:-1])


def test_streaming_without_include_usage_has_no_usage_chunk(fake: FakeOpenAI) -> None:
    fake.queue_reply("hi there")
    chunks = list(client(fake).chat.completions.create(model="gpt-4o-mini", messages=USER, stream=True))
    assert all(c.choices for c in chunks)
    assert all(c.usage is None for c in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "hi there"


def test_streaming_tool_calls_reassemble_by_index(fake: FakeOpenAI) -> None:
    calls_to_make = [("lookup_order", {"order_id": "A1", "notes": "x" * 40}), ("handoff", {})]
    fake.queue_tool_calls(calls_to_make, text="One moment.")
    chunks = list(client(fake).chat.completions.create(model="gpt-4o-mini", messages=USER, stream=True))

    calls: dict[int, dict[str, str]] = {}
    text = ""
    for chunk in chunks:
        delta = chunk.choices[0].delta
        text += delta.content or ""
        for call in delta.tool_calls or []:
            entry = calls.setdefault(call.index, {"id": "", "name": "", "arguments": ""})
            entry["id"] += call.id or ""
            entry["name"] += (call.function.name or "") if call.function else ""
            entry["arguments"] += (call.function.arguments or "") if call.function else ""
    assert text == "One moment."
    assert [calls[0]["name"], calls[1]["name"]] == ["lookup_order", "handoff"]
    assert json.loads(calls[0]["arguments"]) == {"order_id": "A1", "notes": "x" * 40}
    assert json.loads(calls[1]["arguments"]) == {}
    assert calls[0]["id"].startswith("call_") and calls[0]["id"] != calls[1]["id"]
    argument_deltas = [
        c for c in chunks if c.choices[0].delta.tool_calls and c.choices[0].delta.tool_calls[0].id is None
    ]
    assert len(argument_deltas) > 2  # arguments really are split across chunks
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


async def test_async_streaming_with_chunk_delay(fake: FakeOpenAI) -> None:
    fake.queue_reply("slow and steady", chunk_delay=0.05)
    api = async_client(fake)
    arrivals: list[tuple[float, str]] = []
    stream = await api.chat.completions.create(model="gpt-4o-mini", messages=USER, stream=True)
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            arrivals.append((time.monotonic(), chunk.choices[0].delta.content))
    await api.close()
    assert "".join(piece for _, piece in arrivals) == "slow and steady"
    assert arrivals[-1][0] - arrivals[0][0] >= 0.08  # the pieces did not arrive together


# --------------------------------------------------------------------------- errors and delays


def test_queued_error_has_openai_shape(fake: FakeOpenAI) -> None:
    fake.queue_error(500)
    with pytest.raises(openai.InternalServerError) as raised:
        client(fake).chat.completions.create(model="gpt-4o-mini", messages=USER)
    assert raised.value.status_code == 500
    assert raised.value.body == {
        "message": "The server had an error while processing your request. Sorry about that!",
        "type": "server_error",
        "param": None,
        "code": None,
    }


def test_rate_limit_error_with_headers_and_custom_body(fake: FakeOpenAI) -> None:
    fake.queue_error(429, message="Rate limit reached", headers={"retry-after": "0"})
    fake.queue_error(502, body="<html>Bad gateway</html>")
    api = client(fake)
    with pytest.raises(openai.RateLimitError) as raised:
        api.chat.completions.create(model="gpt-4o-mini", messages=USER)
    assert raised.value.response.headers["retry-after"] == "0"
    assert raised.value.body["code"] == "rate_limit_exceeded"
    with pytest.raises(openai.InternalServerError) as gateway:
        api.chat.completions.create(model="gpt-4o-mini", messages=USER)
    assert gateway.value.status_code == 502
    assert "Bad gateway" in gateway.value.response.text


def test_client_retries_consume_the_next_queued_item(fake: FakeOpenAI) -> None:
    fake.queue_error(500)
    fake.queue_reply("after retry")
    completion = client(fake, max_retries=1).chat.completions.create(model="gpt-4o-mini", messages=USER)
    assert completion.choices[0].message.content == "after retry"
    assert len(fake.chat_requests) == 2
    assert fake.chat_requests[1].headers["x-stainless-retry-count"] == "1"


def test_error_while_streaming_is_a_plain_http_error(fake: FakeOpenAI) -> None:
    fake.queue_error(500)
    with pytest.raises(openai.InternalServerError):
        client(fake).chat.completions.create(model="gpt-4o-mini", messages=USER, stream=True)


def test_delay_provokes_a_client_timeout_then_the_fake_keeps_serving(fake: FakeOpenAI) -> None:
    fake.queue_delay(5)
    fake.queue(ScriptedReply(text="late", delay=5))
    api = client(fake, timeout=0.3)
    for _ in range(2):
        started = time.monotonic()
        with pytest.raises(openai.APITimeoutError):
            api.chat.completions.create(model="gpt-4o-mini", messages=USER)
        assert time.monotonic() - started < 2
    fake.queue_reply("on time")
    assert api.chat.completions.create(model="gpt-4o-mini", messages=USER).choices[0].message.content == "on time"


def test_short_delay_still_answers(fake: FakeOpenAI) -> None:
    fake.queue_delay(0.2)
    started = time.monotonic()
    completion = client(fake).chat.completions.create(model="gpt-4o-mini", messages=USER)
    assert time.monotonic() - started >= 0.2
    assert completion.choices[0].message.content == "Echo: What are your opening hours?"


def test_api_key_is_enforced_when_configured_and_never_echoed() -> None:
    with FakeOpenAI(api_key=KEY) as fake:
        assert client(fake).models.list().data
        wrong = "sk-wrong-key-that-is-secret"
        with pytest.raises(openai.AuthenticationError) as raised:
            openai.OpenAI(api_key=wrong, base_url=fake.base_url, max_retries=0).chat.completions.create(
                model="gpt-4o-mini", messages=USER
            )
        assert raised.value.body["code"] == "invalid_api_key"
        assert wrong not in str(raised.value) and wrong not in raised.value.response.text
        missing = httpx.post(f"{fake.base_url}/chat/completions", json={"model": "m", "messages": USER})
        assert missing.status_code == 401
        assert "didn't provide an API key" in missing.json()["error"]["message"]
        assert len(fake.chat_requests) == 2  # rejected requests are recorded too


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": USER}, "model"),
        ({"model": "", "messages": USER}, "model"),
        ({"model": "gpt-4o-mini"}, "messages"),
        ({"model": "gpt-4o-mini", "messages": []}, "messages"),
        ({"model": "gpt-4o-mini", "messages": [{"role": "robot", "content": "x"}]}, "messages[0].role"),
    ],
)
def test_malformed_chat_requests_get_400(fake: FakeOpenAI, body: dict[str, Any], param: str) -> None:
    fake.queue_reply("must stay queued")
    response = httpx.post(f"{fake.base_url}/chat/completions", json=body)
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert response.json()["error"]["param"] == param
    assert fake.pending() == 1


def test_non_json_body_gets_400_and_is_recorded(fake: FakeOpenAI) -> None:
    response = httpx.post(
        f"{fake.base_url}/chat/completions", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert "could not parse the JSON body" in response.json()["error"]["message"]
    [request] = fake.chat_requests
    assert request.body == b"{not json" and request.json_body is None


def test_unknown_path_gets_openai_404(fake: FakeOpenAI) -> None:
    with pytest.raises(openai.NotFoundError, match=r"Invalid URL \(POST /v1/responses\)"):
        client(fake).responses.create(model="gpt-4o-mini", input="hi")


# --------------------------------------------------------------------------- embeddings


def test_embeddings_are_deterministic_unit_vectors(fake: FakeOpenAI) -> None:
    api = client(fake)
    texts = ["our opening hours are 9 to 5", "opening hours", "refund policy for damaged goods"]
    first = api.embeddings.create(model="text-embedding-3-small", input=texts, encoding_format="float")
    again = api.embeddings.create(model="text-embedding-3-small", input=texts, encoding_format="float")

    vectors = [item.embedding for item in first.data]
    assert vectors == [item.embedding for item in again.data]
    assert [item.index for item in first.data] == [0, 1, 2]
    assert all(len(v) == 64 and math.isclose(math.sqrt(cosine(v, v)), 1.0, rel_tol=1e-9) for v in vectors)
    assert cosine(vectors[0], vectors[1]) > cosine(vectors[0], vectors[2])
    assert vectors[0] == embed_text(texts[0])
    assert first.model == "text-embedding-3-small"
    assert first.usage.prompt_tokens == first.usage.total_tokens > 0


def test_embeddings_default_base64_matches_float(fake: FakeOpenAI) -> None:
    api = client(fake)
    decoded = api.embeddings.create(model="text-embedding-3-small", input="opening hours").data[0].embedding
    assert fake.embedding_requests[0].json_body["encoding_format"] == "base64"  # the client's default
    raw = httpx.post(
        f"{fake.base_url}/embeddings",
        json={"model": "m", "input": "opening hours", "encoding_format": "base64"},
    ).json()["data"][0]["embedding"]
    assert list(struct.unpack("<64f", base64.b64decode(raw))) == pytest.approx(decoded)
    assert decoded == pytest.approx(embed_text("opening hours"), abs=1e-6)


async def test_embeddings_dimensions_and_token_ids(fake: FakeOpenAI) -> None:
    api = async_client(fake)
    wide = await api.embeddings.create(model="text-embedding-3-small", input=["a b"], dimensions=256)
    tokens = await api.embeddings.create(model="text-embedding-3-small", input=[[101, 202], [101, 202, 303]])
    single = await api.embeddings.create(model="text-embedding-3-small", input=[101, 202])
    await api.close()
    assert len(wide.data[0].embedding) == 256
    assert len(tokens.data) == 2
    assert tokens.data[0].embedding == pytest.approx(single.data[0].embedding)
    assert tokens.data[0].embedding != pytest.approx(tokens.data[1].embedding)


def test_embedding_dimension_is_configurable() -> None:
    with FakeOpenAI(embedding_dimension=8) as fake:
        response = client(fake).embeddings.create(model="m", input="x", encoding_format="float")
    assert len(response.data[0].embedding) == 8


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "m", "input": ""}, "input"),
        ({"model": "m", "input": []}, "input"),
        ({"model": "m", "input": [1.5]}, "input"),
        ({"model": "m", "input": {"text": "x"}}, "input"),
        ({"input": "x"}, "model"),
        ({"model": "m", "input": "x", "dimensions": 0}, "dimensions"),
        ({"model": "m", "input": "x", "encoding_format": "hex"}, "encoding_format"),
    ],
)
def test_malformed_embedding_requests_get_400(fake: FakeOpenAI, body: dict[str, Any], param: str) -> None:
    response = httpx.post(f"{fake.base_url}/embeddings", json=body)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == param


def test_embedding_errors_and_delays_can_be_queued(fake: FakeOpenAI) -> None:
    fake.queue_error(503, endpoint="embeddings")
    fake.queue_delay(5, endpoint="embeddings")
    api = client(fake, timeout=0.3)
    with pytest.raises(openai.InternalServerError):
        api.embeddings.create(model="m", input="x")
    with pytest.raises(openai.APITimeoutError):
        api.embeddings.create(model="m", input="x")
    assert len(api.embeddings.create(model="m", input="x").data) == 1
    assert fake.pending("chat") == 0  # chat queue untouched


# --------------------------------------------------------------------------- transcriptions and models


def test_transcription_returns_the_queued_text_and_records_the_file(fake: FakeOpenAI) -> None:
    audio = bytes(range(256)) + b"\r\n--boundary\r\n\r\n" + b"\x00" * 10
    fake.queue_transcription("I'd like to book a table")
    api = client(fake)
    result = api.audio.transcriptions.create(model="whisper-1", file=("voice.ogg", audio, "audio/ogg"))
    default = api.audio.transcriptions.create(model="whisper-1", file=("voice.ogg", b"abc", "audio/ogg"))

    assert result.text == "I'd like to book a table"
    assert default.text == "Hello, this is a voice note."
    first = fake.transcription_requests[0]
    assert first.form["model"] == "whisper-1"
    assert first.files["file"].filename == "voice.ogg"
    assert first.files["file"].content_type == "audio/ogg"
    assert first.files["file"].content == audio


def test_transcription_text_format_and_errors(fake: FakeOpenAI) -> None:
    fake.queue_transcription("plain words")
    fake.queue_error(500, endpoint="transcriptions")
    api = client(fake)
    text = api.audio.transcriptions.create(
        model="whisper-1", file=("v.ogg", b"abc", "audio/ogg"), response_format="text"
    )
    assert text.strip() == "plain words"
    with pytest.raises(openai.InternalServerError):
        api.audio.transcriptions.create(model="whisper-1", file=("v.ogg", b"abc", "audio/ogg"))
    no_file = httpx.post(f"{fake.base_url}/audio/transcriptions", data={"model": "whisper-1"},
                         files={"other": ("x", b"1")})
    assert no_file.status_code == 400 and no_file.json()["error"]["param"] == "file"


def test_models_list_and_retrieve(fake: FakeOpenAI) -> None:
    api = client(fake)
    assert "gpt-4o-mini" in [model.id for model in api.models.list().data]
    assert api.models.retrieve("gpt-4o-mini").id == "gpt-4o-mini"
    with pytest.raises(openai.NotFoundError, match="does not exist"):
        api.models.retrieve("gpt-nope")


# --------------------------------------------------------------------------- scripting API


def test_queue_rejects_items_an_endpoint_cannot_answer(fake: FakeOpenAI) -> None:
    with pytest.raises(TypeError, match="embeddings are computed"):
        fake.queue("text", endpoint="embeddings")
    with pytest.raises(TypeError, match="transcript as a str"):
        fake.queue(ScriptedReply(text="x"), endpoint="transcriptions")
    with pytest.raises(ValueError, match="endpoint"):
        fake.queue("x", endpoint="images")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="cannot queue dict"):
        fake.queue({"text": "x"})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least one tool call"):
        fake.queue_tool_calls([])
    with pytest.raises(ValueError, match="embedding_dimension"):
        FakeOpenAI(embedding_dimension=0)


def test_reset_forgets_queue_and_recordings(fake: FakeOpenAI) -> None:
    fake.queue_reply("a")
    client(fake).models.list()
    fake.reset()
    assert fake.requests == [] and fake.pending() == 0


def test_port_before_start_is_a_clear_error() -> None:
    with pytest.raises(RuntimeError, match="not running"):
        FakeOpenAI().base_url  # noqa: B018


# --------------------------------------------------------------------------- concurrency, processes, shutdown


def test_concurrent_requests_are_all_answered_and_recorded(fake: FakeOpenAI) -> None:
    api = client(fake)

    def ask(number: int) -> str | None:
        messages = [{"role": "user", "content": f"question {number}"}]
        return api.chat.completions.create(model="gpt-4o-mini", messages=messages).choices[0].message.content

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(ask, range(24)))
    assert answers == [f"Echo: question {n}" for n in range(24)]
    assert sorted(r.last_user_message for r in fake.chat_requests) == sorted(f"question {n}" for n in range(24))


def test_another_process_can_reach_the_fake(fake: FakeOpenAI) -> None:
    fake.queue_reply("hello, other process")
    script = (
        "import json, sys, urllib.request\n"
        "body = json.dumps({'model': 'gpt-4o-mini', 'messages': [{'role': 'user', 'content': 'hi'}]}).encode()\n"
        "request = urllib.request.Request(sys.argv[1] + '/chat/completions', data=body,\n"
        "                                 headers={'Content-Type': 'application/json'})\n"
        "print(json.load(urllib.request.urlopen(request, timeout=10))['choices'][0]['message']['content'])\n"
    )
    done = subprocess.run([sys.executable, "-c", script, fake.base_url], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "hello, other process"
    [request] = fake.wait_for_requests(1, path="/v1/chat/completions", timeout=1)
    assert request.last_user_message == "hi"


def test_wait_for_requests_times_out_with_a_count(fake: FakeOpenAI) -> None:
    def later() -> None:
        time.sleep(0.1)
        client(fake).models.list()

    thread = threading.Thread(target=later)
    thread.start()
    assert len(fake.wait_for_requests(1, timeout=5)) == 1
    thread.join()
    with pytest.raises(TimeoutError, match=r"expected 2 request\(s\) to /v1/embeddings within 0.1s, got 0"):
        fake.wait_for_requests(2, path="/v1/embeddings", timeout=0.1)


def test_close_drops_kept_alive_and_delayed_connections_and_leaks_no_threads() -> None:
    before = set(threading.enumerate())
    fake = FakeOpenAI().start()
    base_url = fake.base_url
    api = client(fake, timeout=30)
    api.models.list()  # leaves a kept-alive connection in the client's pool
    fake.queue_delay(30)
    outcome: list[BaseException] = []

    def stuck() -> None:
        try:
            api.chat.completions.create(model="gpt-4o-mini", messages=USER)
        except BaseException as exc:  # noqa: BLE001 - the test inspects it
            outcome.append(exc)

    caller = threading.Thread(target=stuck)
    caller.start()
    fake.wait_for_requests(1, path="/v1/chat/completions")
    started = time.monotonic()
    fake.close()
    caller.join(timeout=5)

    assert time.monotonic() - started < 3
    assert not caller.is_alive()
    assert outcome and isinstance(outcome[0], openai.APIConnectionError)
    api.close()
    assert set(threading.enumerate()) - before == set()
    with pytest.raises(openai.APIConnectionError):
        openai.OpenAI(api_key=KEY, base_url=base_url, max_retries=0).models.list()
