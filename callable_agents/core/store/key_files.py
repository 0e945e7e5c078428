"""Master key files: ``<data_dir>/master.key`` and a rotation's pending ``master.key.new``.

Without ``CALLABLE_MASTER_KEY`` the master key lives in a file next to the data. A key file
must be readable by its owner only (mode 0600), is created complete or not at all and never
replaces an existing one, and is fsynced with its directory, so a crash or two processes
starting at once cannot lose a key. :class:`~callable_agents.core.store.vault.Vault` reads
these files; :mod:`callable_agents.core.store.key_rotation` promotes the pending one.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from callable_agents.core.errors import ConfigError
from callable_agents.core.store.vault import decode_master_key, encode_key

__all__ = ["check_key_file_mode", "read_key_file"]


def check_key_file_mode(path: Path) -> None:
    """Refuse a key file that group or others can access (expected mode 0600)."""
    if os.name == "nt":  # POSIX modes don't describe Windows ACLs
        return
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise ConfigError(
            f"{path}: the master key file is accessible by group/others (mode {mode:04o}); "
            f"expected 0600: run `chmod 600 {path}`"
        )


def read_key_file(path: Path) -> bytes:
    check_key_file_mode(path)
    try:
        text = path.read_text(encoding="ascii")
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: expected the base64 encoding of 32 random bytes") from None
    return decode_master_key(text, str(path))


def _fsync_dir(directory: Path) -> None:
    if os.name == "nt":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _create_key_file(path: Path, key: bytes) -> None:
    """Write ``key`` to ``path``, which must not exist: mode 0600 from the start, fsynced.

    The file appears complete or not at all (written under a unique temporary name, then
    hard-linked into place), and never replaces an existing one: when two processes start
    at once, one key wins and :class:`FileExistsError` tells the other to read it.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, (encode_key(key) + "\n").encode("ascii"))
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.chmod(temporary, 0o600)  # the umask can only remove bits, but be explicit
        os.link(temporary, path)  # unlike rename, fails if ``path`` exists
    finally:
        temporary.unlink(missing_ok=True)
    _fsync_dir(path.parent)



def _promote_pending_file(pending_file: Path, key_file: Path, new_key: bytes) -> None:
    """Atomically make ``master.key.new`` the ``master.key``.

    A process starting up may finish the same rotation at the same moment; if the pending
    file is already gone and ``master.key`` holds the new key, the work is done.
    """
    try:
        os.replace(pending_file, key_file)
    except FileNotFoundError:
        if read_key_file(key_file) != new_key:
            raise ConfigError(f"{pending_file} disappeared before it replaced {key_file}") from None
    _fsync_dir(key_file.parent)
