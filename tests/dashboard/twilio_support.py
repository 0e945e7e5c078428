"""What the Integrations and Channels tests share: a fake Twilio account and the dashboard
server pointed at it (import the fixtures into a test module to use them)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from callable_agents.testing.twilio_server import FakeTwilio
from tests.dashboard.support import dashboard_server
from tests.plugins.webchat_support import LiveServer

ACCOUNT = "AC" + "1f" * 16
TOKEN = "tenant-auth-token-s3cr3t-WXYZ"
NUMBER = "+14155550100"
PUBLIC = "https://bot.example.com"  # the public base URL: what Twilio is given and signs


@pytest.fixture
def twilio() -> Iterator[FakeTwilio]:
    """The fake Twilio with the tenant's account (Auth Token :data:`TOKEN`)."""
    with FakeTwilio() as fake:
        fake.add_account(ACCOUNT, TOKEN, friendly_name="Bella's Bakery")
        yield fake


@pytest.fixture
async def server(tmp_path: Path, twilio: FakeTwilio) -> AsyncIterator[LiveServer]:
    """The dashboard's server, its public base URL :data:`PUBLIC`, its Twilio the fake."""
    async with dashboard_server(
        tmp_path, public_base_url=PUBLIC, twilio_api_base_url=twilio.base_url, twilio_messaging_base_url=twilio.base_url
    ) as live:
        yield live
