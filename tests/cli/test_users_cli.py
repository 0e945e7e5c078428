"""``callable user create | list``: one-time links for the dashboard, never a password on the
command line."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

from click.testing import CliRunner, Result

from callable_agents.cli import cli
from callable_agents.core.bootstrap import running
from callable_agents.core.store.users import hash_password, read_link, redeem_link
from tests.cli.helpers import cli_env
from tests.conftest import make_settings


def test_user_create_prints_a_link_that_makes_the_owner(tmp_path: Path) -> None:
    env = cli_env(tmp_path / "data", CALLABLE_PUBLIC_BASE_URL="https://bella.example")
    runner = CliRunner(env=env)

    def run_cli(*args: str, env: dict[str, str]) -> Result:
        return runner.invoke(cli, list(args), catch_exceptions=True)
    assert run_cli("migrate", env=env).exit_code == 0
    assert run_cli("workspace", "create", "Bella's Bakery", "--slug", "bella", env=env).exit_code == 0
    created = run_cli("user", "create", env=env)
    assert created.exit_code == 0, created.output
    link = re.fullmatch(r"https://bella\.example/dashboard/welcome/([A-Za-z0-9_-]+)\n", created.stdout)
    assert link is not None, created.stdout
    assert "works once, for 3 days" in created.stderr
    member = run_cli("user", "create", "--role", "member", env=env)
    assert member.exit_code != 0 and "--email: a member is invited by e-mail address" in str(member.exception)
    bad = run_cli("user", "create", "--role", "member", "--email", "bo", env=env)
    assert bad.exit_code != 0 and "email: expected an e-mail address" in str(bad.exception)

    settings = make_settings(tmp_path / "data", master_key=env["CALLABLE_MASTER_KEY"])

    async def redeem() -> None:
        async with running(settings) as runtime:
            async with runtime.db.session() as session:
                view = await read_link(session, link.group(1))
                assert view.purpose == "owner" and view.workspace_name == "Bella's Bakery"
                await redeem_link(session, link.group(1), email="ann@example.com", name="Ann", password_hash=hash_password("a long password"))

    asyncio.run(redeem())

    listed = run_cli("user", "list", "--json", env=env)
    assert listed.exit_code == 0, listed.output
    [row] = json.loads(listed.stdout)
    assert (row["email"], row["role"], row["signed_in"]) == ("ann@example.com", "owner", "never")
    assert "argon2" not in listed.stdout
