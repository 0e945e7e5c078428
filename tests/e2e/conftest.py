"""Fixtures for end-to-end tests: the fakes, a prepared database and the server process."""

from __future__ import annotations

import asyncio
import itertools
import re
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from sqlalchemy import update

from callable_agents.core.bootstrap import close_runtime, open_runtime
from callable_agents.core.config import Settings
from callable_agents.core.db import migrate_sync
from callable_agents.core.models import Channel
from callable_agents.core.runtime import Runtime
from tests.cli.helpers import free_port
from tests.conftest import make_settings
from tests.e2e.processes import ServerProcess, process_env
from tests.e2e.whatsapp_support import (
    ACCOUNT,
    CUSTOMER,
    PUBLIC_BASE_URL,
    SENDER,
    TOKEN,
    WhatsAppWorld,
    make_world,
    sqlite_settings,
)
from callable_agents.testing.openai_server import FakeOpenAI, last_user_message, message_text
from callable_agents.testing.twilio_server import FakeTwilio
from callable_agents.testing.twilio_signing import inbound_params, signed_headers

T = TypeVar("T")
OPENAI_KEY = "sk-e2e-openai-key-0123456789"
MODEL_SETTINGS = {"integration": "openai", "model": "gpt-4o-mini", "max_retries": 0}
HOURS = "Mon-Sat 7:00-18:00"


_ACK = re.compile(r"^ack: (?P<texts>.*) \(hours: [^)]*\)$", re.DOTALL)


def acknowledged(replies: list[dict[str, Any]]) -> list[str]:
    """The customer messages ``grounded_responder``'s replies answered, in reply order."""
    texts: list[str] = []
    for reply in replies:
        match = _ACK.match(str(reply["body"]))
        assert match, f"unexpected reply {reply['body']!r}"
        texts.extend(match["texts"].split(" | "))
    return texts


def grounded_responder(request_json: dict[str, Any]) -> str:
    """A model that answers from what it was given: the opening hours in the system prompt,
    and an acknowledgement naming every customer message of this turn (``ack: a | b``)."""
    messages = request_json.get("messages") or []
    this_turn: list[str] = []
    for message in reversed(messages):
        if message.get("role") == "user":
            this_turn.insert(0, message_text(message).strip())
        elif message.get("role") in ("assistant", "tool"):
            break
    system = "\n".join(message_text(m) for m in messages if m.get("role") == "system")
    if "LONG" in last_user_message(request_json):
        return "\n\n".join(f"Section {n}. " + "Our sourdough rests for two days before baking. " * 10 for n in range(8))
    hours = re.search(r"Mon-Sat \d+:\d+-\d+:\d+", system)
    return f"ack: {' | '.join(this_turn)} (hours: {hours.group(0) if hours else 'unknown'})"


def run(settings: Settings, work: Callable[[Runtime], Awaitable[T]]) -> T:
    """Run ``work`` with a runtime of its own on ``settings``' database (from a sync test)."""

    async def go() -> T:
        runtime = await open_runtime(settings)
        try:
            return await work(runtime)
        finally:
            await close_runtime(runtime)

    return asyncio.run(go())


@dataclass
class Stack:
    """A prepared workspace served by a real server process, with both fakes."""

    settings: Settings
    twilio: FakeTwilio
    openai: FakeOpenAI
    world: WhatsAppWorld
    server: ServerProcess
    tmp_path: Path

    @property
    def inbound_public_url(self) -> str:
        return f"{PUBLIC_BASE_URL}/channels/whatsapp/{self.world.channel.id}/inbound"

    @property
    def status_public_url(self) -> str:
        return f"{PUBLIC_BASE_URL}/channels/whatsapp/{self.world.channel.id}/status"

    def inbound(self, body: str, *, user: str = CUSTOMER, sid: str | None = None, **extra: str) -> dict[str, str]:
        return inbound_params(ACCOUNT, user, SENDER, body, sid, **extra)

    def post_inbound(self, params: dict[str, str], *, token: str = TOKEN, client: httpx.Client | None = None) -> httpx.Response:
        url = f"{self.server.url}/channels/whatsapp/{self.world.channel.id}/inbound"
        headers = signed_headers(token, self.inbound_public_url, params)
        if client is not None:
            return client.post(url, data=params, headers=headers)
        return httpx.post(url, data=params, headers=headers, timeout=10)

    def restart(self) -> None:
        self.server = ServerProcess(self.server.env, self.server.log_path, self.server.port).start_and_wait()


def prepare(
    tmp_path: Path,
    twilio: FakeTwilio,
    openai: FakeOpenAI,
    *,
    database_url: str | None = None,
    replies: dict[str, Any] | None = None,
    config: dict[str, Any] | None = None,
    api_key: tuple[str, str] | None = None,
) -> tuple[Settings, WhatsAppWorld]:
    """A migrated database with a workspace, its integrations, a chat agent and a WhatsApp
    channel (with ``replies`` as its reply policy, the default when None)."""
    overrides: dict[str, Any] = {
        "twilio_api_base_url": twilio.base_url,
        "twilio_messaging_base_url": twilio.base_url,
        "twilio_content_base_url": twilio.base_url,
    }
    if database_url is None:
        settings = sqlite_settings(tmp_path, **overrides)
    else:
        settings = make_settings(tmp_path / "data", database_url, public_base_url=PUBLIC_BASE_URL, **overrides)
        migrate_sync(settings.resolved_database_url)
    world = run(
        settings,
        lambda runtime: make_world(
            runtime,
            config=config,
            api_key=api_key,
            model_settings=MODEL_SETTINGS,
            openai=(openai.base_url, OPENAI_KEY),
            business_info={"name": "Bella's Bakery", "hours": HOURS},
        ),
    )
    if replies is not None:
        run(settings, lambda runtime: _set_replies(runtime, world.channel.id, replies))
    return settings, world


async def _set_replies(runtime: Runtime, channel_id: str, replies: dict[str, Any]) -> None:
    async with runtime.db.session() as session:
        await session.execute(update(Channel).where(Channel.id == channel_id).values(replies=replies))


def fake_twilio() -> FakeTwilio:
    server = FakeTwilio().start()
    server.add_account(ACCOUNT, TOKEN)
    return server


def fake_openai() -> FakeOpenAI:
    return FakeOpenAI(api_key=OPENAI_KEY, responder=grounded_responder).start()


@pytest.fixture
def twilio() -> Iterator[FakeTwilio]:
    server = fake_twilio()
    yield server
    server.close()


@pytest.fixture
def openai() -> Iterator[FakeOpenAI]:
    server = fake_openai()
    yield server
    server.close()


def start_stack(
    tmp_path: Path, twilio: FakeTwilio, openai: FakeOpenAI, *, name: str = "server", **prepare_kwargs: Any
) -> Stack:
    settings, world = prepare(tmp_path, twilio, openai, **prepare_kwargs)
    server = ServerProcess(process_env(settings), tmp_path / f"{name}.log", free_port()).start_and_wait()
    return Stack(settings, twilio, openai, world, server, tmp_path)


@pytest.fixture(scope="module")
def shared_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """One server (and fakes) for a module's tests: starting a server takes seconds, so tests
    that don't need a process of their own share it, each with customers of its own."""
    twilio, openai = fake_twilio(), fake_openai()
    started = start_stack(tmp_path_factory.mktemp("shared"), twilio, openai)
    try:
        yield started
    finally:
        started.server.stop()
        twilio.close()
        openai.close()


_customers = itertools.count(1)


def new_customer() -> str:
    """A WhatsApp address no other test uses."""
    return f"whatsapp:+1555{next(_customers):07d}"
