"""The secrets vault: AES-256-GCM envelope encryption with one data key per workspace.

Key hierarchy:

* The **master key** (KEK, 32 random bytes) comes from ``CALLABLE_MASTER_KEY`` (base64) or,
  without it, from ``<data_dir>/master.key`` (created on first use, mode 0600; see
  :mod:`callable_agents.core.store.key_files`). It never touches the database; only its
  fingerprint (``master_key_id``) does.
* Each workspace has a random 32-byte **data key**, stored on its row wrapped by the master
  key: ``w1:<kek id>:<b64url(nonce || ciphertext || tag)>``, bound by AAD to the workspace.
* A secret is stored as ``v1:<data key id>:<b64url(nonce || ciphertext || tag)>``, bound by
  AAD to (workspace, integration, field), so a value copied to another row, workspace or
  field does not decrypt.

The AAD is always rebuilt from the trusted row context (the workspace row, the integration
id and the field name), never from the token. Every failure raises :class:`VaultError`
naming where the value lives, never the value: there is no fallback that returns stored
text. Rotating the master key only re-wraps the data keys (see
:func:`callable_agents.core.store.key_rotation.rotate_master_key`), so every secret token
stays as it is.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from callable_agents.core.errors import ConfigError, VaultError
from callable_agents.core.models import Workspace

if TYPE_CHECKING:
    from callable_agents.core.config import Settings

__all__ = [
    "Vault",
    "generate_key",
    "decode_master_key",
    "master_key_fingerprint",
]

class KeyedWorkspace(Protocol):
    """What decrypting needs of a workspace: a Workspace row or a read-only snapshot of its key."""

    @property
    def id(self) -> str: ...
    @property
    def slug(self) -> str: ...
    @property
    def wrapped_key(self) -> str | None: ...
    @property
    def key_id(self) -> str | None: ...

log = logging.getLogger(__name__)

KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
SECRET_FORMAT = "v1"
WRAPPED_FORMAT = "w1"
KEY_FILE_NAME = "master.key"
PENDING_KEY_FILE_NAME = "master.key.new"
MASTER_KEY_ENV = "CALLABLE_MASTER_KEY"
PREVIOUS_MASTER_KEY_ENV = "CALLABLE_PREVIOUS_MASTER_KEY"
_SUBKEY_DOMAIN = b"callable-agents/subkey/v1/"
DATA_KEY_CACHE_SIZE = 1024
# Domain separation: a master key and a data key with the same bytes still get unrelated ids.
_MASTER_ID_DOMAIN = b"callable-agents/master-key-id/v1\x00"
_DATA_KEY_ID_DOMAIN = b"callable-agents/data-key-id/v1\x00"


def generate_key() -> bytes:
    """32 random bytes: a new master or data key."""
    return AESGCM.generate_key(bit_length=KEY_BYTES * 8)


def master_key_fingerprint(key: bytes) -> str:
    return hashlib.sha256(_MASTER_ID_DOMAIN + key).hexdigest()[:16]


def data_key_fingerprint(key: bytes) -> str:
    return hashlib.sha256(_DATA_KEY_ID_DOMAIN + key).hexdigest()[:16]


def encode_key(key: bytes) -> str:
    return base64.b64encode(key).decode("ascii")


def decode_master_key(text: str, source: str) -> bytes:
    """Base64 of exactly 32 bytes, or a :class:`ConfigError` naming ``source`` (never the value)."""
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(
            f"{source}: expected the base64 encoding of 32 random bytes, but it is not valid base64 "
            "(generate one with: python -c \"import base64,os; print(base64.b64encode(os.urandom(32)).decode())\")"
        ) from None
    if len(key) != KEY_BYTES:
        raise ConfigError(
            f"{source}: expected the base64 encoding of exactly 32 random bytes, but it decodes to {len(key)} bytes"
        )
    return key


def _canonical(data: dict[str, object]) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":")).encode("utf-8")


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii")


def _b64decode(text: str) -> bytes:
    """Strict base64url: stray characters are an error, not silently dropped."""
    return base64.b64decode(text, altchars=b"-_", validate=True)


def _wrap_aad(workspace_id: str, kek_id: str) -> bytes:
    return _canonical({"v": 1, "purpose": "workspace-key", "workspace": workspace_id, "kek": kek_id})


def _secret_aad(key_id: str, workspace_id: str, integration_id: str, field: str) -> bytes:
    return _canonical({"v": 1, "kid": key_id, "workspace": workspace_id, "integration": integration_id, "field": field})


class Vault:
    """Holds the master key(s) in memory and encrypts/decrypts workspace secrets.

    ``master_key`` wraps new data keys. ``decrypt_only_keys`` are other master keys that can
    still unwrap (the pending key of an interrupted rotation); the kek id recorded in each
    wrapped token picks the key. ``key_file`` is where the primary key was read from, if it
    came from a file (rotation needs it).
    """

    def __init__(
        self,
        master_key: bytes,
        *,
        decrypt_only_keys: Iterable[bytes] = (),
        key_file: Path | None = None,
    ) -> None:
        if len(master_key) != KEY_BYTES:
            raise ConfigError(f"master key: expected exactly {KEY_BYTES} bytes, got {len(master_key)}")
        self._primary_id = master_key_fingerprint(master_key)
        self._keks: dict[str, bytes] = {self._primary_id: master_key}
        for key in decrypt_only_keys:
            if len(key) != KEY_BYTES:
                raise ConfigError(f"master key: expected exactly {KEY_BYTES} bytes, got {len(key)}")
            self._keks.setdefault(master_key_fingerprint(key), key)
        self.key_file = key_file
        # (workspace id, wrapped token) -> data key; process memory only, bounded.
        self._data_keys: OrderedDict[tuple[str, str], bytes] = OrderedDict()
        # (master key id, purpose) -> subkey: a session cookie or visitor token is checked on
        # every request, and HKDF costs a few microseconds each time. A handful of purposes.
        self._subkeys: dict[tuple[str, str], bytes] = {}
        self._cache_lock = threading.Lock()  # vault calls may come from worker threads

    # -- construction ---------------------------------------------------------------------

    @classmethod
    def from_settings(cls, settings: Settings) -> Vault:
        """The vault for this process: ``CALLABLE_MASTER_KEY`` if set, else the key file.

        The key file is created on first use. If ``master.key.new`` exists (a rotation that
        did not finish), its key is loaded too so both the old and the new state are readable.
        """
        if settings.master_key is not None:
            previous = (
                [decode_master_key(settings.previous_master_key.get_secret_value(), PREVIOUS_MASTER_KEY_ENV)]
                if settings.previous_master_key is not None
                else []
            )
            return cls(decode_master_key(settings.master_key.get_secret_value(), MASTER_KEY_ENV), decrypt_only_keys=previous)
        # A local import: key_files imports this module for the key encoding.
        from callable_agents.core.store.key_files import _create_key_file, read_key_file

        key_file = settings.data_dir / KEY_FILE_NAME
        pending_file = settings.data_dir / PENDING_KEY_FILE_NAME
        if not key_file.exists():
            if pending_file.exists():
                raise ConfigError(
                    f"{key_file} is missing but {pending_file} exists: restore {KEY_FILE_NAME} from your key "
                    f"backup (refusing to create a new master key next to an unfinished rotation)"
                )
            try:
                _create_key_file(key_file, generate_key())
            except FileExistsError:
                pass  # another process created it a moment ago: use theirs
            else:
                log.warning(
                    "created a new master key at %s. Back it up now and keep the backup apart from database "
                    "backups: without it every stored secret is lost; together with a database dump it exposes them.",
                    key_file,
                )
        master_key = read_key_file(key_file)
        pending = [read_key_file(pending_file)] if pending_file.exists() else []
        vault = cls(master_key, decrypt_only_keys=pending, key_file=key_file)
        if pending:
            log.warning(
                "found %s (master key %s) from an unfinished key rotation; both keys are loaded. "
                "Run `callable keys rotate` to finish it.",
                pending_file,
                vault.pending_key_id,
            )
        return vault

    # -- derived keys ---------------------------------------------------------------------

    def derive_subkey(self, purpose: str) -> bytes:
        """A 32-byte key for one purpose (e.g. signing a chat plugin's visitor tokens), derived from
        the primary master key with HKDF-SHA256. Different purposes get unrelated keys; the
        master key itself never leaves the vault."""
        if not purpose or len(purpose) > 100:
            raise ValueError("purpose: expected a short non-empty label")
        found = self._subkeys.get((self._primary_id, purpose))
        if found is None:
            found = HKDF(
                algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=_SUBKEY_DOMAIN + purpose.encode()
            ).derive(self._keks[self._primary_id])
            self._subkeys[(self._primary_id, purpose)] = found
        return found

    # -- identity -------------------------------------------------------------------------

    @property
    def master_key_id(self) -> str:
        """Fingerprint of the master key that wraps new data keys (safe to show and store)."""
        return self._primary_id

    @property
    def pending_key_id(self) -> str | None:
        """The decrypt-only master key loaded from ``master.key.new``, if any."""
        others = [kid for kid in self._keks if kid != self._primary_id]
        return others[0] if others else None

    @property
    def pending_key_file(self) -> Path | None:
        return self.key_file.with_name(PENDING_KEY_FILE_NAME) if self.key_file else None

    def _use_only(self, master_key: bytes) -> None:
        """Switch this vault to ``master_key`` alone (after a rotation completed)."""
        self._primary_id = master_key_fingerprint(master_key)
        self._keks = {self._primary_id: master_key}
        self._subkeys.clear()

    def __repr__(self) -> str:
        return f"Vault(master_key_id={self._primary_id!r})"

    def __reduce__(self) -> NoReturn:
        # Keeps keys out of pickles: LangGraph checkpoints, caches, multiprocessing payloads.
        raise TypeError("a Vault holds key material and cannot be pickled")

    def __copy__(self) -> Vault:
        return self  # one vault per process; copying a runtime or config shares it

    def __deepcopy__(self, memo: dict[int, object]) -> Vault:
        return self

    # -- workspace data keys --------------------------------------------------------------

    def new_wrapped_key(self, workspace_id: str) -> tuple[str, str]:
        """A fresh random data key for a new workspace: ``(wrapped_key token, key_id)``."""
        data_key = generate_key()
        wrapped = self._wrap(workspace_id, data_key)
        self._remember(workspace_id, wrapped, data_key)
        return wrapped, data_key_fingerprint(data_key)

    def rewrap(self, workspace: Workspace, new_master: Vault) -> str:
        """The workspace's data key wrapped by ``new_master``'s key: the new ``wrapped_key``.

        The data key itself does not change, so the workspace's secret tokens stay valid.
        """
        data_key = self._data_key(workspace)
        wrapped = new_master._wrap(workspace.id, data_key)
        new_master._remember(workspace.id, wrapped, data_key)
        return wrapped

    @staticmethod
    def kek_id_of(wrapped_key: str) -> str:
        """The master key id recorded in a wrapped-key token (no decryption)."""
        parts = wrapped_key.split(":", 2)
        return parts[1] if len(parts) == 3 else ""

    def _wrap(self, workspace_id: str, data_key: bytes) -> str:
        nonce = os.urandom(NONCE_BYTES)
        sealed = AESGCM(self._keks[self._primary_id]).encrypt(
            nonce, data_key, _wrap_aad(workspace_id, self._primary_id)
        )
        return f"{WRAPPED_FORMAT}:{self._primary_id}:{_b64encode(nonce + sealed)}"

    def _remember(self, workspace_id: str, wrapped: str, data_key: bytes) -> None:
        with self._cache_lock:
            self._data_keys[(workspace_id, wrapped)] = data_key
            self._data_keys.move_to_end((workspace_id, wrapped))
            while len(self._data_keys) > DATA_KEY_CACHE_SIZE:
                self._data_keys.popitem(last=False)

    def _data_key(self, workspace: KeyedWorkspace) -> bytes:
        """Unwrap (or fetch from the in-process cache) the workspace's data key."""
        wrapped = workspace.wrapped_key
        where = f"workspace {workspace.slug or workspace.id!r}"
        if not wrapped or not workspace.key_id:
            raise VaultError(f"{where} has no data key (wrapped_key/key_id are empty)")
        with self._cache_lock:
            cached = self._data_keys.get((workspace.id, wrapped))
        if cached is not None:
            return cached
        parts = wrapped.split(":", 2)
        if len(parts) != 3 or parts[0] != WRAPPED_FORMAT:
            raise VaultError(f"{where}: its wrapped data key is not in a format this version understands")
        _, kek_id, body = parts
        kek = self._keks.get(kek_id)
        if kek is None:
            raise VaultError(
                f"{where}: its data key is wrapped by master key {kek_id!r}, but the loaded master key is "
                f"{self._primary_id!r}; check {MASTER_KEY_ENV} / {KEY_FILE_NAME} (was the key changed or lost?)"
            )
        try:
            raw = _b64decode(body)
            data_key = AESGCM(kek).decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], _wrap_aad(workspace.id, kek_id))
        except (binascii.Error, ValueError) as exc:
            raise VaultError(f"{where}: its wrapped data key is malformed") from exc
        except InvalidTag as exc:
            raise VaultError(
                f"{where}: its data key failed authentication under master key {kek_id!r} "
                "(tampered, or copied from another workspace)"
            ) from exc
        if len(data_key) != KEY_BYTES or data_key_fingerprint(data_key) != workspace.key_id:
            raise VaultError(f"{where}: the unwrapped data key does not match the workspace's key id")
        self._remember(workspace.id, wrapped, data_key)
        return data_key

    # -- secrets --------------------------------------------------------------------------

    def encrypt(self, workspace: Workspace, integration_id: str, field: str, plaintext: str) -> str:
        """Encrypt one secret value for (workspace, integration, field); a fresh nonce each time."""
        data_key = self._data_key(workspace)
        key_id = str(workspace.key_id)
        nonce = os.urandom(NONCE_BYTES)
        sealed = AESGCM(data_key).encrypt(
            nonce, plaintext.encode("utf-8"), _secret_aad(key_id, workspace.id, integration_id, field)
        )
        return f"{SECRET_FORMAT}:{key_id}:{_b64encode(nonce + sealed)}"

    def decrypt(self, workspace: KeyedWorkspace, integration_id: str, field: str, token: str) -> str:
        """Decrypt a token stored for (workspace, integration, field), or raise :class:`VaultError`."""
        where = f"workspace {workspace.slug or workspace.id!r}, integration {integration_id!r}, field {field!r}"
        if not isinstance(token, str):
            raise VaultError(f"{where}: the stored secret is not a vault token")
        parts = token.split(":", 2)
        if len(parts) != 3:
            raise VaultError(f"{where}: the stored secret is not a vault token")
        version, token_key_id, body = parts
        if version != SECRET_FORMAT:
            raise VaultError(f"{where}: unknown secret format version (expected {SECRET_FORMAT!r})")
        if token_key_id != workspace.key_id:
            raise VaultError(
                f"{where}: the secret was encrypted with data key {token_key_id!r}, "
                f"not this workspace's key {workspace.key_id!r}"
            )
        data_key = self._data_key(workspace)
        try:
            raw = _b64decode(body)
        except (binascii.Error, ValueError) as exc:
            raise VaultError(f"{where}: the stored secret is malformed (bad base64)") from exc
        if len(raw) < NONCE_BYTES + TAG_BYTES:
            raise VaultError(f"{where}: the stored secret is malformed (too short)")
        aad = _secret_aad(str(workspace.key_id), workspace.id, integration_id, field)
        try:
            plaintext = AESGCM(data_key).decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], aad)
        except InvalidTag as exc:
            raise VaultError(
                f"{where}: the stored secret failed authentication (tampered, or moved from another row or field)"
            ) from exc
        try:
            return plaintext.decode("utf-8")
        except UnicodeDecodeError as exc:  # cannot happen for values we encrypted
            raise VaultError(f"{where}: the decrypted secret is not UTF-8 text") from exc
