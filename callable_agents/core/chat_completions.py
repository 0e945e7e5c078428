"""The OpenAI chat completions endpoint without the client's request transform.

``openai``'s ``AsyncCompletions.create`` walks every request through a type-directed
transform (``async_maybe_transform``) before sending it. For chat completion parameters it
changes nothing: no request field has an alias or a format, so the output equals the input.
It is still the costliest step of a turn's model call: the walk tries each message against
every member of the message union, about 0.1 ms per message, 2–3 ms for an ordinary
conversation's history, on the event loop, every turn.

:class:`PlainChatCompletions` posts langchain-openai's payload as it is, through the same
client (auth, retries, timeouts, errors, streaming and ``with_raw_response`` unchanged).
``tests/core/test_chat_completions.py`` checks that the transform is the identity on the
payloads we send, so a future client where it is not fails there.
"""

from __future__ import annotations

from typing import Any

import openai
from openai._base_client import make_request_options
from openai.resources.chat.completions import AsyncCompletions
from openai.types.chat import ChatCompletion, ChatCompletionChunk

REQUEST_OPTIONS = ("extra_headers", "extra_query", "extra_body", "timeout")


class PlainChatCompletions(AsyncCompletions):
    """``client.chat.completions`` whose ``create`` sends its keyword arguments as the body."""

    async def create(self, **params: Any) -> Any:
        options = {name: params.pop(name) for name in REQUEST_OPTIONS if name in params}
        return await self._post(
            "/chat/completions",
            body=params,
            options=make_request_options(**options),
            cast_to=ChatCompletion,
            stream=bool(params.get("stream")),
            stream_cls=openai.AsyncStream[ChatCompletionChunk],
        )
