"""Running the ``callable`` command as a user would: in-process through its own entry point
(:func:`run_cli`), or as the real console script in a subprocess (:func:`run_cli_process`,
:func:`run_in_terminal`).

:func:`run_cli` calls :func:`callable_agents.cli.main` itself, the function the console
script runs, with the environment, argv, stdin, stdout and stderr a fresh process would
have: the same exit code (``SystemExit``), the same one-line errors, the same log lines on
stderr (the root logger is set up by the command as on a fresh process). It saves the
second or more a subprocess spends importing the model stack again, for every command. The
tests of start-up itself (imports, signals, serving, a terminal) run the real process.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import threading
import warnings
from pathlib import Path

from click.testing import CliRunner

from callable_agents.cli import main
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


# Python's default warning filters (after its rule for __main__, where no code of ours runs).
_PYTHON_DEFAULT_FILTERS = (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning)


def _print_warning(message, category, filename, lineno, file=None, line=None):  # type: ignore[no-untyped-def]
    """As the interpreter prints a warning: on (the command's) stderr."""
    sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


_one_at_a_time = threading.Lock()  # sys.stdout, os.environ and logging are the process's own


def run_cli(
    *args: str, env: dict[str, str], input: str | None = None, timeout: float = 120, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """``callable ARGS`` with exactly ``env`` as its environment, run in this process.

    On a thread of its own, so that ``asyncio.run`` inside the command works from async tests
    too (their loop is blocked meanwhile, as it would be waiting on a subprocess).
    """
    # The process's environment replaced by ``env``, as a subprocess would see it.
    overrides: dict[str, str | None] = {name: None for name in os.environ if name not in env}
    overrides.update(env)
    runner = CliRunner()
    outcome: dict[str, object] = {}

    def run() -> None:
        root = logging.getLogger()
        handlers, level = root.handlers[:], root.level
        root.handlers.clear()  # as in a new process: the command's basicConfig logs to its stderr
        argv, here = sys.argv, os.getcwd()
        try:
            with warnings.catch_warnings(), runner.isolation(input=input, env=overrides) as (stdout, stderr, _):
                # Python's own warning filters and printing on stderr, not the test run's.
                warnings.resetwarnings()
                for category in _PYTHON_DEFAULT_FILTERS:
                    warnings.simplefilter("ignore", category, append=True)
                warnings.simplefilter("default", append=True)
                warnings.showwarning = _print_warning
                sys.argv = ["callable", *args]
                if cwd is not None:
                    os.chdir(cwd)
                try:
                    main()
                    outcome["code"] = 0
                except SystemExit as exc:
                    code = exc.code
                    outcome["code"] = code if isinstance(code, int) else (0 if code is None else 1)
                    if isinstance(code, str):
                        sys.stderr.write(code + "\n")
                except BaseException as exc:  # what the interpreter would print before exiting with 1
                    import traceback

                    traceback.print_exception(exc)
                    outcome["code"] = 1
                finally:
                    sys.stdout.flush()
                    sys.stderr.flush()
                    for handler in root.handlers:
                        handler.flush()
                outcome["stdout"] = stdout.getvalue().decode("utf-8", errors="replace")
                outcome["stderr"] = stderr.getvalue().decode("utf-8", errors="replace")
        finally:
            os.chdir(here)
            sys.argv = argv
            root.handlers[:] = handlers
            root.setLevel(level)

    with _one_at_a_time:
        thread = threading.Thread(target=run, name=f"callable {' '.join(args)[:40]}")
        thread.start()
        thread.join(timeout)
        if thread.is_alive():
            raise subprocess.TimeoutExpired(["callable", *args], timeout)
    return subprocess.CompletedProcess(
        ["callable", *args], int(outcome["code"]), str(outcome["stdout"]), str(outcome["stderr"])  # type: ignore[call-overload]
    )


def run_cli_process(
    *args: str, env: dict[str, str], input: str | None = None, timeout: float = 120, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """``callable ARGS`` as the real console script does it, in a subprocess."""
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
