"""Integrations through the admin API: checked live with (the fake) Twilio before anything is
stored, exactly as ``callable integrations connect`` does; secrets never in a response."""

from __future__ import annotations

from callable_agents.core.store.integrations import list_integrations
from tests.api.conftest import ACCOUNT_SID, AUTH_TOKEN, ApiEnv, error_of

WRONG_TOKEN = "wrong-token-0123456789abcdef-QQQQ"
NEW_TOKEN = "rotated-auth-token-0123456789-ZZZZ"


def twilio_body(token: str = AUTH_TOKEN, **extra: object) -> dict[str, object]:
    return {
        "provider": "twilio", "name": "twilio-main", "public": {"account_sid": ACCOUNT_SID},
        "secrets": {"auth_token": token}, **extra,
    }


async def stored_names(env: ApiEnv) -> list[str]:
    async with env.runtime.db.sessions() as session:
        return [row.name for row in await list_integrations(session, env.workspace_id)]


def assert_no_secret_in_any_response(env: ApiEnv) -> None:
    assert env.responses
    for response in env.responses:
        for secret in (AUTH_TOKEN, WRONG_TOKEN, NEW_TOKEN):
            assert secret not in response.text and secret not in str(response.headers)


async def test_refused_credentials_store_nothing(env: ApiEnv) -> None:
    wrong = error_of(await env.api.post("/integrations", json=twilio_body(WRONG_TOKEN)), 422)
    assert f"Twilio rejected the credentials for account {ACCOUNT_SID}" in wrong["message"]
    assert "Auth Token" in wrong["message"]

    env.twilio.fail_next(1, 404, code=20404)
    unknown = error_of(await env.api.post("/integrations", json=twilio_body()), 422)
    assert f"Twilio has no account {ACCOUNT_SID}" in unknown["message"]

    env.twilio.fail_next(1, 503)
    failing = error_of(await env.api.post("/integrations", json=twilio_body()), 422)
    assert "nothing was stored" in failing["message"] and '"verify": false' in failing["message"]
    account_checks = [r for r in env.twilio.requests if r.path.endswith(f"/Accounts/{ACCOUNT_SID}.json")]
    assert len(account_checks) == 3  # each attempt asked Twilio

    env.twilio.fail_next(10, disconnect=True)  # every try the client makes is cut off
    unreachable = error_of(await env.api.post("/integrations", json=twilio_body()), 422)
    assert "could not reach Twilio" in unreachable["message"] and "nothing was stored" in unreachable["message"]
    env.twilio.reset()

    assert await stored_names(env) == []
    assert (await env.api.get("/integrations")).json() == {"integrations": []}
    assert_no_secret_in_any_response(env)


async def test_connect_read_rotate_and_remove_without_showing_secrets(env: ApiEnv) -> None:
    connected = await env.api.post("/integrations", json=twilio_body())
    assert connected.status_code == 201, connected.text
    view = connected.json()
    assert (view["provider"], view["account_sid"], view["has_auth_token"]) == ("twilio", ACCOUNT_SID, True)
    assert view["auth_token_last4"] == "WXYZ"
    assert (await env.api.get(f"/integrations/{view['id']}")).json() == view
    assert [i["name"] for i in (await env.api.get("/integrations")).json()["integrations"]] == ["twilio-main"]

    # Rotating: a token Twilio refuses changes nothing; the new one is checked, then stored.
    refused = await env.api.patch("/integrations/twilio-main", json={"secrets": {"auth_token": WRONG_TOKEN}})
    assert error_of(refused, 422)["message"].startswith("Twilio rejected the credentials")
    assert (await env.api.get("/integrations/twilio-main")).json()["auth_token_last4"] == "WXYZ"
    env.twilio.add_account(ACCOUNT_SID, NEW_TOKEN)  # rotated in the Twilio Console first
    rotated = await env.api.patch("/integrations/twilio-main", json={"secrets": {"auth_token": NEW_TOKEN}})
    assert rotated.status_code == 200, rotated.text
    assert rotated.json()["auth_token_last4"] == "ZZZZ" and rotated.json()["id"] == view["id"]

    assert (await env.api.delete("/integrations/twilio-main")).status_code == 204
    assert (await env.api.get("/integrations/twilio-main")).status_code == 404
    assert_no_secret_in_any_response(env)


async def test_verify_false_stores_without_asking(env: ApiEnv) -> None:
    stored = await env.api.post("/integrations", json=twilio_body(WRONG_TOKEN, verify=False))
    assert stored.status_code == 201
    assert not [r for r in env.twilio.requests if "/Accounts/" in r.path]
    assert await stored_names(env) == ["twilio-main"]
    assert_no_secret_in_any_response(env)


async def test_bad_bodies_name_the_field(env: ApiEnv) -> None:
    cases: dict[str, dict[str, object]] = {
        "provider": {"name": "x"},
        "name": {"provider": "twilio"},
        "public": twilio_body(public="AC..."),
        "secrets": twilio_body(secrets=["token"]),
        "verify": twilio_body(verify="yes"),
        "auth_token": twilio_body(auth_token=AUTH_TOKEN),  # a secret outside "secrets"
    }
    for field, body in cases.items():
        assert error_of(await env.api.post("/integrations", json=body), 422).get("field") == field, (field, env.responses[-1].text)
    unknown_provider = error_of(await env.api.post("/integrations", json=twilio_body(provider="pigeon")), 422)
    assert unknown_provider["message"].startswith("provider: expected one of")
    missing_token = error_of(await env.api.post("/integrations", json=twilio_body(secrets={})), 422)
    assert "auth_token: required" in missing_token["message"]
    bad_sid = error_of(await env.api.post("/integrations", json=twilio_body(public={"account_sid": "nope"})), 422)
    assert "account_sid" in bad_sid["message"]
    assert error_of(await env.api.patch("/integrations/nope", json={"secrets": {}}), 404)
    assert await stored_names(env) == []


async def test_another_workspaces_integrations_are_not_found(env: ApiEnv) -> None:
    theirs = (await env.other.post("/integrations", json=twilio_body())).json()
    for reference in (theirs["id"], theirs["name"]):
        assert (await env.api.get(f"/integrations/{reference}")).status_code == 404
        patched = await env.api.patch(f"/integrations/{reference}", json={"secrets": {"auth_token": WRONG_TOKEN}})
        assert patched.status_code == 404
        assert (await env.api.delete(f"/integrations/{reference}")).status_code == 404
    assert (await env.api.get("/integrations")).json() == {"integrations": []}
    assert (await env.other.get(f"/integrations/{theirs['id']}")).json()["auth_token_last4"] == "WXYZ"
