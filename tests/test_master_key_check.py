"""A wrong master key is found at start-up, not when a customer is waiting.

The server checks that its master key opens every workspace's data key: readiness says no
and the log says what to do; a request that needs a secret answers a 5xx whose body names
nothing internal (no workspace slug, no key fingerprint).
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from pydantic import SecretStr

from callable_agents.core.store.vault import master_key_fingerprint
from callable_agents.server import create_app
from tests.conftest import new_master_key
from tests.e2e.whatsapp_support import ACCOUNT, CUSTOMER, SENDER, TOKEN, form_and_headers, make_world, serving, sqlite_settings
from callable_agents.testing.twilio_signing import inbound_params


async def test_a_master_key_that_opens_no_workspace_makes_the_server_unready(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    settings = sqlite_settings(tmp_path)
    async with serving(create_app(settings)) as client:
        assert (await client.get("/readyz")).json() == {"status": "ready"}
        runtime = client._transport.app.state.runtime  # type: ignore[attr-defined]
        world = await make_world(runtime)
        inbound_url = world.urls(runtime)["inbound"]
        path = world.path("inbound")
        slug = world.workspace.slug
        old_fingerprint = runtime.vault.master_key_id

    wrong = settings.model_copy(update={"master_key": SecretStr(new_master_key())})
    caplog.set_level(logging.ERROR)
    async with serving(create_app(wrong)) as client:
        ready = await client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["reason"].startswith("the master key cannot open the data key of 1 workspace(s)")
        assert any(slug in record.getMessage() and "CALLABLE_MASTER_KEY" in record.getMessage() for record in caplog.records)

        params = inbound_params(ACCOUNT, CUSTOMER, SENDER, "Hello")
        answered = await client.post(path, **form_and_headers(TOKEN, inbound_url, params))
        assert answered.status_code == 500
        new_fingerprint = client._transport.app.state.runtime.vault.master_key_id  # type: ignore[attr-defined]
        for internal in (slug, old_fingerprint, new_fingerprint, "workspace", "master key"):
            assert internal not in answered.text
    assert old_fingerprint != new_fingerprint != master_key_fingerprint(b"\0" * 32)
