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


def run_cli(
    *args: str, env: dict[str, str], input: str | None = None, timeout: float = 120, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "callable_agents", *args],
        env=env,
        cwd=cwd,
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_in_terminal(*args: str, env: dict[str, str], cwd: Path | None = None, timeout: float = 120) -> tuple[int, str]:
    """Run ``callable ARGS`` with stdin, stdout and stderr on a pseudo-terminal, as in a shell.

    Returns the exit code and everything the terminal received (both streams, with the
    carriage returns a progress bar redraws itself with).
    """
    import pty

    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "callable_agents", *args],
        env={**env, "TERM": "xterm", "COLUMNS": "100"},
        cwd=cwd,
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
    )
    os.close(terminal)
    received = bytearray()
    try:
        while True:
            try:
                data = os.read(controller, 65536)
            except OSError:  # EIO: the command exited and closed its side
                break
            if not data:
                break
            received.extend(data)
        code = process.wait(timeout=timeout)
    finally:
        os.close(controller)
        if process.poll() is None:
            process.kill()
    return code, received.decode("utf-8", errors="replace")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
