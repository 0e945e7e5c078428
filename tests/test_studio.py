"""`langgraph dev` serves the repository's langgraph.json offline and runs the agent graph."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from callable_agents.core.bootstrap import running
from callable_agents.core.models import Agent
from callable_agents.core.store.workspaces import ensure_workspace
from tests.cli.helpers import free_port
from tests.conftest import make_settings

REPO = Path(__file__).resolve().parents[1]
LANGGRAPH = Path(sys.executable).with_name("langgraph")


async def _demo_agent(data_dir: Path) -> dict[str, str]:
    settings = make_settings(data_dir)
    async with running(settings, migrate=True) as runtime:
        async with runtime.db.session() as session:
            workspace = await ensure_workspace(session, runtime.vault, "Demo", "demo")
            session.add(
                Agent(
                    workspace_id=workspace.id,
                    name="assistant",
                    business_info={"name": "Bella's Bakery"},
                    fallback_message="Sorry!",
                )
            )
    return {
        "CALLABLE_DATA_DIR": str(data_dir),
        "CALLABLE_DATABASE_URL": settings.database_url or "",
        "CALLABLE_MASTER_KEY": settings.master_key.get_secret_value() if settings.master_key else "",
        "CALLABLE_DISABLE_PLUGIN_AUTOLOAD": "true",
    }


def _updates(stream_text: str) -> list[str]:
    nodes = []
    event = None
    for line in stream_text.splitlines():
        if line.startswith("event:"):
            event = line.split(":", 1)[1].strip()
        elif line.startswith("data:") and event == "updates":
            nodes.extend(json.loads(line.split(":", 1)[1]).keys())
    return nodes


@pytest.mark.timeout(180)
async def test_langgraph_dev_runs_the_agent_graph_offline(tmp_path: Path) -> None:
    if not LANGGRAPH.exists():
        pytest.fail("langgraph CLI missing: install the test extra (pip install -e '.[test]')")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLABLE_")}
    env.update(await _demo_agent(tmp_path / "data"))
    env.update(LANGGRAPH_CLI_NO_ANALYTICS="1", LANGGRAPH_NO_VERSION_CHECK="true")
    port = free_port()
    process = subprocess.Popen(
        [str(LANGGRAPH), "dev", "--no-browser", "--no-reload", "--port", str(port), "--config", str(REPO / "langgraph.json")],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=base, timeout=60) as client:
            deadline = time.monotonic() + 90
            while True:
                try:
                    if (await client.get("/ok")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert process.poll() is None and time.monotonic() < deadline, "langgraph dev did not start"
                time.sleep(0.5)
            thread = (await client.post("/threads", json={})).json()["thread_id"]
            request = {
                "assistant_id": "agent",
                "input": {"messages": [{"role": "user", "content": "Can I talk to a person?"}]},
                "context": {"workspace": "demo", "agent": "assistant"},
                "stream_mode": ["updates"],
            }
            streamed = await client.post(f"/threads/{thread}/runs/stream", json=request)
            assert streamed.status_code == 200, streamed.text
            nodes = _updates(streamed.text)
            assert nodes[:2] == ["retrieve", "reason"] and nodes[-1] == "respond", streamed.text[-2000:]
            state = (await client.get(f"/threads/{thread}/state")).json()["values"]
            assert state["reply"] and "person" in state["reply"][0]
    finally:
        process.terminate()
        try:
            output, _ = process.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            output, _ = process.communicate()
    assert "BlockingError" not in output, output[-3000:]
