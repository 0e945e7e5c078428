"""Visitor tokens: a browser's proof of which web chat conversation is its own.

A token is ``v1.<channel id>.<visitor id>.<signature>``, the signature an HMAC-SHA256 over
the version, channel id and visitor id with a key derived from the server's master key for
this purpose only (``Vault.derive_subkey("webchat-visitor-tokens")``). Every process with
the same master key accepts it, so sessions survive restarts and several servers; nothing
is stored per session. The visitor id is 128 random bits; the conversation's external user
id is ``web:<visitor id>``. A token is bound to its channel: it is refused on any other.

Tokens don't expire: they live in the visitor's ``localStorage`` so the conversation
survives page loads, like a cookie would. Rotating the master key invalidates them all (the
widget then starts a new session).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from callable_agents.plugin import Runtime

TOKEN_VERSION = "v1"
KEY_PURPOSE = "webchat-visitor-tokens"
SERVICE_NAME = "webchat_visitor_tokens"
EXTERNAL_USER_PREFIX = "web:"
_ID = re.compile(r"^[0-9a-f]{32}$")
_SIGNATURE_BYTES = 32


class InvalidVisitorToken(Exception):
    """The token is malformed or its signature is wrong (the message says which, never the key)."""


@dataclass(frozen=True)
class Visitor:
    """Who a valid token belongs to."""

    channel_id: str
    visitor_id: str

    @property
    def external_user_id(self) -> str:
        return EXTERNAL_USER_PREFIX + self.visitor_id

    @property
    def display_name(self) -> str:
        """How the inbox names an anonymous visitor: short, and the same on every message."""
        return f"Web visitor {self.visitor_id[:6]}"


class VisitorTokens:
    """Issues and verifies visitor tokens with one signing key."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 32:
            raise ValueError("the visitor token key must be at least 32 bytes")
        self._key = key

    def __repr__(self) -> str:
        return "VisitorTokens(<key hidden>)"

    @classmethod
    def of(cls, runtime: Runtime) -> VisitorTokens:
        """The process's token signer, keyed from the vault (created on first use)."""
        return runtime.services.shared(cls, lambda: cls(_derive_key(runtime)))

    def issue(self, channel_id: str) -> tuple[str, Visitor]:
        """A new visitor on ``channel_id`` and its token."""
        visitor = Visitor(channel_id=channel_id, visitor_id=secrets.token_hex(16))
        return self.token_for(visitor), visitor

    def token_for(self, visitor: Visitor) -> str:
        if not _ID.match(visitor.channel_id) or not _ID.match(visitor.visitor_id):
            raise ValueError("channel and visitor ids must be 32 lowercase hex characters")
        signature = _b64(self._sign(visitor.channel_id, visitor.visitor_id))
        return f"{TOKEN_VERSION}.{visitor.channel_id}.{visitor.visitor_id}.{signature}"

    def verify(self, token: str) -> Visitor:
        """The visitor a token names, if its signature is right; else :class:`InvalidVisitorToken`."""
        parts = token.split(".")
        if len(parts) != 4 or parts[0] != TOKEN_VERSION:
            raise InvalidVisitorToken("the visitor token is malformed")
        _, channel_id, visitor_id, signature = parts
        if not _ID.match(channel_id) or not _ID.match(visitor_id):
            raise InvalidVisitorToken("the visitor token is malformed")
        # Compare the encodings, not decoded bytes: base64's padding bits would otherwise let
        # several spellings of one signature through.
        if not hmac.compare_digest(signature.encode("ascii", "replace"), _b64(self._sign(channel_id, visitor_id)).encode()):
            raise InvalidVisitorToken("the visitor token's signature is not valid")
        return Visitor(channel_id=channel_id, visitor_id=visitor_id)

    def _sign(self, channel_id: str, visitor_id: str) -> bytes:
        message = f"{TOKEN_VERSION}|{channel_id}|{visitor_id}".encode("ascii")
        return hmac.new(self._key, message, hashlib.sha256).digest()[:_SIGNATURE_BYTES]


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _derive_key(runtime: Runtime) -> bytes:
    return runtime.vault.derive_subkey(KEY_PURPOSE)
