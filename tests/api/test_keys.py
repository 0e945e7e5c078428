"""API keys through the admin API: shown once, listed without the key, revoked at once."""

from __future__ import annotations

from tests.api.conftest import ApiEnv, error_of


async def test_create_list_and_revoke(env: ApiEnv) -> None:
    created = await env.api.post("/keys", json={"name": "zapier"})
    assert created.status_code == 201, created.text
    made = created.json()
    key = made.pop("key")
    assert key.startswith(f"ca_{made['prefix']}_") and made["status"] == "active"
    listed = (await env.api.get("/keys")).json()["keys"]
    assert [k["name"] for k in listed] == ["tests", "zapier"]
    assert all("key" not in k for k in listed) and key not in str(listed)

    headers = {"Authorization": f"Bearer {key}"}
    assert (await env.api.get("/workspace", headers=headers)).json()["slug"] == "acme"
    revoked = await env.api.delete(f"/keys/{made['prefix']}")
    assert revoked.status_code == 200 and revoked.json()["status"] == "revoked"
    assert error_of(await env.api.get("/workspace", headers=headers), 401)["message"].endswith("unknown or revoked")
    assert error_of(await env.api.delete(f"/keys/{made['id']}"), 409)["message"]
    assert (await env.api.get("/workspace")).status_code == 200  # the other key still works

    assert (await env.api.post("/keys", json={})).json()["name"] == "default"
    assert error_of(await env.api.post("/keys", json={"name": 7}), 422)["field"] == "name"
    assert error_of(await env.api.post("/keys", json={"label": "x"}), 422)["field"] == "label"
    assert error_of(await env.api.delete("/keys/tests"), 404)  # by id or prefix, not by a (shared) name


async def test_another_workspaces_keys_are_not_found(env: ApiEnv) -> None:
    theirs = (await env.other.post("/keys", json={"name": "theirs"})).json()
    for reference in (theirs["id"], theirs["prefix"]):
        assert (await env.api.delete(f"/keys/{reference}")).status_code == 404
    assert "theirs" not in str((await env.api.get("/keys")).json())
    theirs_headers = {"Authorization": f"Bearer {theirs['key']}"}
    assert (await env.api.get("/workspace", headers=theirs_headers)).json()["slug"] == "globex"
