"""Master key rotation, and the start-up check that the loaded master key opens every workspace.

Rotating re-wraps each workspace's data key under a new master key; the secrets themselves
are untouched. The steps are ordered so a crash at any point leaves everything readable,
and :func:`finish_interrupted_rotation` completes at start-up a rotation that committed but
did not rename its key file. :func:`workspaces_the_key_cannot_open` finds a wrong master
key at start-up rather than when a secret is first needed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import select

from callable_agents.core.errors import ConfigError, VaultError
from callable_agents.core.models import Workspace
from callable_agents.core.store.key_files import _create_key_file, _promote_pending_file, read_key_file
from callable_agents.core.store.vault import MASTER_KEY_ENV, Vault, generate_key, master_key_fingerprint

if TYPE_CHECKING:
    from callable_agents.core.db import Database

__all__ = [
    "RotationResult",
    "finish_interrupted_rotation",
    "rotate_master_key",
    "workspaces_the_key_cannot_open",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RotationResult:
    rewrapped: int
    old_key_id: str
    new_key_id: str
    key_file: Path | None


RotationProgress = Callable[[int, int], None]  # (workspaces looked at, workspaces in all)


async def _rewrap_stale(
    db: Database, reader: Vault, new_master: Vault, progress: RotationProgress | None = None
) -> int:
    """Re-wrap, in one transaction, every workspace key not yet wrapped by ``new_master``."""
    count = 0
    async with db.session() as session:
        workspaces = (await session.scalars(select(Workspace).order_by(Workspace.id).with_for_update())).all()
        for done, workspace in enumerate(workspaces, start=1):
            if workspace.wrapped_key and reader.kek_id_of(workspace.wrapped_key) != new_master.master_key_id:
                workspace.wrapped_key = reader.rewrap(workspace, new_master)
                count += 1
            if progress is not None:
                progress(done, len(workspaces))
    return count


async def rotate_master_key(
    db: Database, vault: Vault, new_key: bytes | None = None, *, progress: RotationProgress | None = None
) -> RotationResult:
    """Re-wrap every workspace key under a new master key; secrets themselves are untouched.

    With a key file the steps are ordered so a crash at any point leaves everything
    readable: the new key is written to ``master.key.new`` (0600, fsynced), the workspace
    keys are re-wrapped in one transaction, then ``master.key.new`` atomically replaces
    ``master.key``. At start-up both files are loaded, and running this again resumes with
    the pending key. Without a key file (``CALLABLE_MASTER_KEY``) ``new_key`` is required
    and the caller tells the operator to update the variable. ``progress`` is called after
    each workspace of the first pass with (done, total), for a progress bar.
    """
    old_key_id = vault.master_key_id
    pending_file = vault.pending_key_file
    if pending_file is not None and pending_file.exists():
        pending = read_key_file(pending_file)
        if new_key is not None and new_key != pending:
            raise ConfigError(
                f"{pending_file} holds a different new key from an unfinished rotation; run again without "
                "a new key to finish that rotation first"
            )
        new_key = pending
    elif new_key is None:
        if vault.key_file is None:
            raise ConfigError(f"{MASTER_KEY_ENV} is set: the new master key must be given (on stdin)")
        new_key = generate_key()
    if master_key_fingerprint(new_key) == old_key_id:
        raise ConfigError("the new master key is the same as the current one")
    if pending_file is not None and not pending_file.exists():
        try:
            _create_key_file(pending_file, new_key)
        except FileExistsError:
            raise ConfigError(f"{pending_file} appeared meanwhile: is another `callable keys rotate` running?") from None
    new_master = Vault(new_key, key_file=vault.key_file)
    # The reader unwraps with either key, so a half-finished earlier run is no problem.
    reader = Vault(vault._keks[old_key_id], decrypt_only_keys=[new_key])
    rewrapped = await _rewrap_stale(db, reader, new_master, progress)
    # A process still on the old key may have created a workspace meanwhile: sweep until
    # nothing uses the old key any more, so dropping it loses nothing.
    while swept := await _rewrap_stale(db, reader, new_master):
        rewrapped += swept
    if vault.key_file is not None and pending_file is not None:
        _promote_pending_file(pending_file, vault.key_file, new_key)
    vault._use_only(new_key)
    return RotationResult(rewrapped, old_key_id, new_master.master_key_id, vault.key_file)


async def finish_interrupted_rotation(db: Database, vault: Vault) -> bool:
    """At start-up: if ``master.key.new`` is loaded and every workspace already uses it, make it
    the master key (rename it over ``master.key``) and return True.

    When some workspaces still use the old key the rotation did not commit; both keys stay
    loaded and ``callable keys rotate`` finishes it.
    """
    pending_id = vault.pending_key_id
    pending_file = vault.pending_key_file
    if pending_id is None or pending_file is None or vault.key_file is None or not pending_file.exists():
        return False
    async with db.session() as session:
        wrapped_keys = (await session.scalars(select(Workspace.wrapped_key))).all()
    if any(w and vault.kek_id_of(w) != pending_id for w in wrapped_keys):
        return False  # from_settings already warned that `callable keys rotate` finishes it
    _promote_pending_file(pending_file, vault.key_file, vault._keks[pending_id])
    vault._use_only(vault._keks[pending_id])
    log.warning("finished an interrupted master key rotation: master key is now %s", pending_id)
    return True



async def workspaces_the_key_cannot_open(db: Database, vault: Vault) -> list[str]:
    """The slugs of the workspaces whose data key the loaded master key(s) cannot unwrap.

    Run at start-up: a wrong ``CALLABLE_MASTER_KEY`` is otherwise found only when a secret is
    first needed (a visitor waiting on a reply, a webhook answering 500). Reads the
    workspaces only; nothing is decrypted but their data keys.
    """
    async with db.sessions() as session:
        workspaces = (await session.scalars(select(Workspace).order_by(Workspace.slug))).all()
    unreadable = []
    for workspace in workspaces:
        try:
            vault._data_key(workspace)
        except VaultError:
            unreadable.append(workspace.slug or workspace.id)
    return unreadable
