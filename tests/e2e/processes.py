"""Running the real ``callable`` server and worker processes for end-to-end tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import httpx

from callable_agents.core.config import Settings

T = TypeVar("T")


def process_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment for a process sharing ``settings``' database and master key."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CALLABLE_", "OPENAI_", "TWILIO_"))}
    assert settings.master_key is not None
    env.update(
        CALLABLE_DATA_DIR=str(settings.data_dir),
        CALLABLE_DATABASE_URL=str(settings.database_url),
        CALLABLE_MASTER_KEY=settings.master_key.get_secret_value(),
        CALLABLE_DISABLE_PLUGIN_AUTOLOAD="true",
        CALLABLE_ALLOW_PRIVATE_URLS="true",
        CALLABLE_LOG_LEVEL="WARNING",
        PYTHONUNBUFFERED="1",
    )
    for name, value in (
        ("CALLABLE_PUBLIC_BASE_URL", settings.public_base_url),
        ("CALLABLE_TWILIO_API_BASE_URL", settings.twilio_api_base_url),
        ("CALLABLE_TWILIO_MESSAGING_BASE_URL", settings.twilio_messaging_base_url),
        ("CALLABLE_TWILIO_CONTENT_BASE_URL", getattr(settings, "twilio_content_base_url", None)),
    ):
        if value:
            env[name] = value
    env.update(extra)
    return env


class CallableProcess:
    """``python -m callable_agents <args>`` with its output in a log file."""

    def __init__(self, args: list[str], env: Mapping[str, str], log_path: Path) -> None:
        self.args = args
        self.env = dict(env)
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> CallableProcess:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "callable_agents", *self.args],
            env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        log.close()
        return self

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill9(self) -> None:
        """SIGKILL: no shutdown, no cleanup, as in a crash."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


class ServerProcess(CallableProcess):
    """``callable serve`` on a port of its own."""

    def __init__(self, env: Mapping[str, str], log_path: Path, port: int) -> None:
        super().__init__(["serve", "--port", str(port)], env, log_path)
        self.port = port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start_and_wait(self, timeout: float = 60) -> ServerProcess:
        self.start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"server exited with {self.process.returncode}:\n{self.log}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"server not ready after {timeout}s:\n{self.log}")


def wait_until(check: Callable[[], T | None], *, timeout: float, what: str, interval: float = 0.05, log: Callable[[], str] | None = None) -> T:
    """Poll ``check`` until it returns something truthy; fail naming ``what`` (and the server log)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            detail = f"\n--- server log ---\n{log()[-6000:]}" if log else ""
            raise AssertionError(f"timed out after {timeout}s waiting for {what}{detail}")
        time.sleep(interval)


def sent_to(sent_messages: list[dict[str, Any]], to: str) -> list[dict[str, Any]]:
    return [m for m in sent_messages if m["to"] == to]
