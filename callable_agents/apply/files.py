"""Where an apply file's file sources may be read from, and the reading.

A file source's content is indexed, returned by knowledge searches and sent to the model
provider, so an apply file must not be able to name any file the command can read. A
``path`` is resolved against the YAML file's folder and must stay inside the **allowed
root**: that folder, or the one given with ``callable apply --source-root DIR``. Refused
even inside it:

- anything in the server's data folder (``settings.data_dir``: the database, the master key,
  the indexes);
- key files: ``master.key``, ``master.key.new`` and any ``*.key`` or ``*.pem`` (and a hard
  link to the data folder's key under another name);
- symbolic links that lead out of the allowed root (the check is on the resolved path, and
  the file is opened without following a link swapped in afterwards).

Each refusal raises :class:`SourcePathError`, whose message the checks report on the
source's ``path`` field.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

KEY_FILE_NAMES = frozenset({"master.key", "master.key.new"})
KEY_FILE_SUFFIXES = frozenset({".key", ".pem"})
SOURCE_ROOT_HINT = "give another folder with `callable apply --source-root DIR`"


class SourcePathError(ValueError):
    """A file source's path that may not be read; the message says why and what would do."""


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _is_key_file(path: Path) -> bool:
    return path.name.lower() in KEY_FILE_NAMES or path.suffix.lower() in KEY_FILE_SUFFIXES


def source_file_path(raw: str, *, base_dir: Path, root: Path, data_dir: Path) -> Path:
    """The resolved file ``raw`` names, if an apply file may read it; else :class:`SourcePathError`.

    ``base_dir`` is the YAML file's folder (relative paths start there), ``root`` the
    allowed root (see the module docstring).
    """
    try:
        return _checked_path(raw, base_dir=base_dir, root=root, data_dir=data_dir)
    except SourcePathError:
        raise
    except (OSError, RuntimeError, ValueError) as exc:  # unreadable folders, link loops, a NUL byte
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise SourcePathError(f"cannot read {raw!r}: {reason}") from None


def _checked_path(raw: str, *, base_dir: Path, root: Path, data_dir: Path) -> Path:
    root = root.resolve()
    written = Path(os.path.normpath(base_dir.resolve() / raw))  # as written: ".." applied, links not followed
    resolved = written.resolve()
    where = f"the YAML file's folder {str(root)!r}" if root == base_dir.resolve() else f"the source root {str(root)!r}"
    if not _inside(written, root):
        raise SourcePathError(f"expected a path inside {where}; {raw!r} is outside it ({SOURCE_ROOT_HINT})")
    if not _inside(resolved, root):
        raise SourcePathError(
            f"{raw!r} is a symbolic link (or goes through one) that leads out of {where}; "
            "copy the file into it instead"
        )
    data = data_dir.resolve()
    if _inside(written, data) or _inside(resolved, data):
        raise SourcePathError(
            f"{raw!r} is in the server's data folder (settings.data_dir, {str(data)!r}), which holds its "
            "database and keys; file sources are never read from it"
        )
    if _is_key_file(written) or _is_key_file(resolved):
        raise SourcePathError(
            f"{raw!r} looks like a key file (master.key, master.key.new, *.key, *.pem); key files are never "
            "read as knowledge"
        )
    if not resolved.is_file():
        raise SourcePathError(f"no file at {raw!r} (paths are relative to the YAML file)")
    for name in sorted(KEY_FILE_NAMES):  # a hard link to the key is the key under another name
        key_file = data / name
        if key_file.is_file() and os.path.samefile(resolved, key_file):
            raise SourcePathError(f"{raw!r} is the server's {name} under another name; key files are never read as knowledge")
    return resolved


def read_source_file(path: Path, max_bytes: int) -> bytes:
    """The bytes of the regular file at ``path`` (checked by :func:`source_file_path`), at
    most ``max_bytes``. Opened without following a symbolic link put there since the check."""
    try:
        descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError as exc:
        raise SourcePathError(f"cannot read the file: {exc.strerror}") from None
    with os.fdopen(descriptor, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise SourcePathError("expected a regular file")
        if info.st_size > max_bytes:
            raise SourcePathError(f"the file is {info.st_size} bytes; the limit is {max_bytes}")
        content = handle.read(max_bytes + 1)
    if len(content) > max_bytes:  # it grew since it was measured
        raise SourcePathError(f"the file is over {max_bytes} bytes, the limit")
    return content
