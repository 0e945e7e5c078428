"""Members through the admin API: invitations as one-time links, roles, removal; the last
owner stays; password hashes and link tokens never in a list."""

from __future__ import annotations

from callable_agents.core.store.users import create_user, hash_password, read_link, redeem_link
from tests.api.conftest import ApiEnv, error_of

PASSWORD = "correct horse battery staple"


async def add_owner(env: ApiEnv, workspace_id: str | None = None, email: str = "owner@acme.test") -> str:
    async with env.runtime.db.session() as session:
        user = await create_user(session, workspace_id or env.workspace_id, email=email, role="owner", password_hash=hash_password(PASSWORD))
    return user.id


async def test_invite_join_change_roles_and_remove(env: ApiEnv) -> None:
    owner_id = await add_owner(env)
    invited = await env.api.post("/members", json={"email": "Sam@Acme.test"})
    assert invited.status_code == 201, invited.text
    invitation = invited.json()
    assert (invitation["email"], invitation["role"]) == ("sam@acme.test", "member")
    base_url = env.runtime.settings.base_url
    assert invitation["link"].startswith(f"{base_url}/dashboard/welcome/")
    token = invitation["link"].rsplit("/", 1)[1]

    listed = (await env.api.get("/members")).json()
    assert [m["email"] for m in listed["members"]] == ["owner@acme.test"]
    assert [i["id"] for i in listed["invitations"]] == [invitation["id"]]
    assert token not in str(listed) and "password" not in str(listed) and "$argon2" not in str(listed)

    async with env.runtime.db.session() as session:  # the person opens the link and sets a password
        assert (await read_link(session, token)).email == "sam@acme.test"
        sam = await redeem_link(session, token, email="ignored@x.test", name="Sam", password_hash=hash_password(PASSWORD))
    listed = (await env.api.get("/members")).json()
    assert [(m["email"], m["role"]) for m in listed["members"]] == [("owner@acme.test", "owner"), ("sam@acme.test", "member")]
    assert listed["invitations"] == []
    assert error_of(await env.api.post("/members", json={"email": "sam@acme.test"}), 409)["message"].startswith("email:")

    last_owner = error_of(await env.api.patch(f"/members/{owner_id}", json={"role": "member"}), 409)
    assert "last owner" in last_owner["message"]
    assert error_of(await env.api.delete(f"/members/{owner_id}"), 409)["message"].startswith("user: the workspace's last owner")
    promoted = await env.api.patch(f"/members/{sam.id}", json={"role": "owner"})
    assert promoted.status_code == 200 and promoted.json()["role"] == "owner"
    assert (await env.api.patch(f"/members/{owner_id}", json={"role": "member"})).json()["role"] == "member"
    assert (await env.api.delete(f"/members/{owner_id}")).status_code == 204
    assert [m["email"] for m in (await env.api.get("/members")).json()["members"]] == ["sam@acme.test"]

    again = (await env.api.post("/members", json={"email": "kim@acme.test", "role": "owner"})).json()
    assert again["role"] == "owner"
    assert (await env.api.delete(f"/invitations/{again['id']}")).status_code == 204
    assert (await env.api.delete(f"/invitations/{again['id']}")).status_code == 404
    assert (await env.api.get("/members")).json()["invitations"] == []


async def test_bad_bodies_name_the_field(env: ApiEnv) -> None:
    owner_id = await add_owner(env)
    cases = {
        "email": {"email": "not-an-address"},
        "role": {"email": "a@acme.test", "role": "admin"},
        "name": {"email": "a@acme.test", "name": "A"},
    }
    for field, body in cases.items():
        assert error_of(await env.api.post("/members", json=body), 422).get("field") == field, field
    assert error_of(await env.api.patch(f"/members/{owner_id}", json={"role": "boss"}), 422)["field"] == "role"
    assert error_of(await env.api.patch(f"/members/{owner_id}", json={}), 422)["field"] == "role"
    assert (await env.api.get("/members")).json()["invitations"] == []


async def test_another_workspaces_members_are_not_found(env: ApiEnv) -> None:
    await add_owner(env)
    theirs = await add_owner(env, env.other_workspace_id, "boss@globex.test")
    await add_owner(env, env.other_workspace_id, "second@globex.test")
    invitation = (await env.other.post("/members", json={"email": "new@globex.test"})).json()
    assert (await env.api.patch(f"/members/{theirs}", json={"role": "member"})).status_code == 404
    assert (await env.api.delete(f"/members/{theirs}")).status_code == 404
    assert (await env.api.delete(f"/invitations/{invitation['id']}")).status_code == 404
    listed = (await env.api.get("/members")).json()
    assert "globex" not in str(listed)
    assert [m["role"] for m in (await env.other.get("/members")).json()["members"]] == ["owner", "owner"]
    assert len((await env.other.get("/members")).json()["invitations"]) == 1
