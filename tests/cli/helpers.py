"""Running the real ``callable`` command in a subprocess, as a user would."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from tests.conftest import new_master_key


def cli_env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLABLE_")}
    env.update(
        CALLABLE_DATA_DIR=str(data_dir),
        CALLABLE_MASTER_KEY=new_master_key(),
        CALLABLE_DISABLE_PLUGIN_AUTOLOAD="true",
    )
    env.update(extra)
    return env


def run_cli(*args: str, env: dict[str, str], input: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "callable_agents", *args],
        env=env,
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
