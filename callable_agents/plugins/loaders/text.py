"""Pasted text: a title and the text itself (stored as the source's content, UTF-8)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from pydantic import BaseModel, ConfigDict

from callable_agents.plugin import (
    Document,
    InvalidInput,
    LoadError,
    LoadRequest,
    LoaderType,
    SourceDraft,
    hookimpl,
)

DEFAULT_TITLE = "Pasted text"
MAX_TEXT_BYTES = 5_000_000


class TextOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")


def check(draft: SourceDraft) -> None:
    if draft.content is None or not draft.content.strip():
        raise InvalidInput("text: expected some text, got nothing")
    if len(draft.content) > min(MAX_TEXT_BYTES, draft.settings.max_upload_bytes):
        limit = min(MAX_TEXT_BYTES, draft.settings.max_upload_bytes)
        raise InvalidInput(f"text: {len(draft.content)} bytes is over the {limit}-byte limit; upload it as a file")
    try:
        draft.content.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"text: expected UTF-8 text (invalid byte at position {exc.start})") from None


async def load(request: LoadRequest) -> AsyncIterator[Document]:
    if request.content is None:
        raise LoadError("this text source has no text stored")
    try:
        text = request.content.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise LoadError(f"the stored text is not UTF-8 (invalid byte at position {exc.start})") from None
    yield Document(text=text, metadata={"title": request.title or DEFAULT_TITLE})


@hookimpl
def register_knowledge_loaders() -> list[LoaderType]:
    return [
        LoaderType(
            name="text",
            description="Pasted text with a title",
            options_schema=TextOptions,
            load=load,
            check=check,
        )
    ]
