"""The server skeleton: lifespan, health endpoints, JSON errors, body limit, API auth."""

from __future__ import annotations

import gc
import weakref
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from callable_agents.core.bootstrap import running
from callable_agents.core.config import Settings
from callable_agents.core.errors import NotMigrated
from callable_agents.core.store.workspaces import create_api_key, create_workspace
from callable_agents.server import create_app, keep_startup_out_of_gc
from tests.conftest import make_settings


def test_refuses_to_start_on_an_unmigrated_database(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path))
    with pytest.raises(NotMigrated, match=r"run `callable migrate` \(or start with CALLABLE_AUTO_MIGRATE=true\)"):
        with TestClient(app):
            pass


def test_migrates_itself_when_asked_and_is_ready(tmp_path: Path) -> None:
    with TestClient(create_app(make_settings(tmp_path, auto_migrate=True))) as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        assert client.get("/readyz").json() == {"status": "ready"}


def test_ready_on_postgresql(settings: Settings) -> None:
    with TestClient(create_app(settings)) as client:
        assert client.get("/readyz").status_code == 200


async def test_request_body_limit(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, auto_migrate=True, max_request_bytes=2048)
    key = await _api_key(settings)
    with TestClient(create_app(settings), headers={"Authorization": f"Bearer {key}"}) as client:
        response = client.post("/api/v1/integrations", content=b"x" * 4096)
        assert response.status_code == 413
        assert response.json() == {"error": {"message": "request body too large: the limit is 2048 bytes"}}

        def chunks():  # no Content-Length: the limit holds while the endpoint reads the stream
            for _ in range(8):
                yield b"y" * 1024

        streamed = client.post("/api/v1/integrations", content=chunks())
        assert streamed.status_code == 413


async def _api_key(settings: Settings) -> str:
    async with running(settings, migrate=True) as runtime:
        async with runtime.db.session() as session:
            workspace = await create_workspace(session, runtime.vault, "Api")
            _row, key = await create_api_key(session, workspace.id, "test")
    return key


async def test_api_requires_a_bearer_key_and_answers_json(sqlite_settings: Settings) -> None:
    key = await _api_key(sqlite_settings)
    with TestClient(create_app(sqlite_settings)) as client:
        missing = client.get("/api/v1/workspace")
        assert missing.status_code == 401
        assert "Bearer" in missing.json()["error"]["message"]
        wrong = client.get("/api/v1/workspace", headers={"Authorization": "Bearer ca_0000_nope"})
        assert wrong.status_code == 401
        ok = client.get("/api/v1/workspace", headers={"Authorization": f"Bearer {key}"})
        assert ok.status_code == 200 and ok.json()["slug"] == "api"
        not_found = client.get("/api/v1/nothing-here")
        assert not_found.status_code == 404 and "error" in not_found.json()
        bad_json = client.post(
            "/api/v1/integrations", content=b"{not json", headers={"Authorization": f"Bearer {key}"}
        )
        assert bad_json.status_code == 422
        assert bad_json.json()["error"]["message"].startswith("body: expected a JSON object")


def test_a_started_process_freezes_what_is_alive_after_collecting_the_garbage() -> None:
    """``keep_startup_out_of_gc`` (the server's lifespan and ``callable worker`` call it):
    what is alive leaves the collector's passes; a cycle nothing refers to is freed first."""

    class Node:
        me: object = None

    alive = Node()
    garbage = Node()
    garbage.me = garbage  # only the collector frees a cycle
    freed = weakref.ref(garbage)
    del garbage
    before = gc.get_freeze_count()
    try:
        keep_startup_out_of_gc()
        assert freed() is None
        assert gc.get_freeze_count() > before
        assert not any(found is alive for found in gc.get_objects())  # no longer walked
    finally:
        gc.unfreeze()


@pytest.mark.parametrize("run_worker", [True, False])
def test_a_process_that_runs_turns_has_its_graph_compiled_before_it_serves(tmp_path: Path, run_worker: bool) -> None:
    """The first turn does not compile the graph or build the HTTP client; a web-only
    process (its worker off) does not pay for either."""
    app = create_app(make_settings(tmp_path, auto_migrate=True, run_worker=run_worker))
    with TestClient(app):
        runtime = app.state.runtime
        assert (runtime.services.graph is not None) is run_worker
        assert (runtime.services.http is not None) is run_worker
