"""The handoff webhook: HMAC-signed JSON telling the team a conversation was handed off,
delivered by a durable job (kind ``webhook``, this plugin's ``register_job_kinds``) with retries.

The handoff tool asks for it with a ``QueueJob`` effect, so the job commits with the turn
that handed off. Like every outbound request configured by a business, the URL must resolve
to public addresses unless ``allow_private_urls`` is set (see :mod:`callable_agents.core.http_safety`).

Signature header (Stripe-style, so receivers can reuse familiar code):
``X-Callable-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">``.
Receivers should recompute it with their copy of the secret and reject old timestamps.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

import httpx

from callable_agents.plugin import (
    HostNotFound,
    Job,
    NotFound,
    PermanentFailure,
    RetryLater,
    Runtime,
    UnsafeAddress,
    complete_job,
    guarded_targets,
    read_conversation,
    read_integration_secret,
    read_named_integration,
    shared_http_client,
)

WEBHOOK_JOB = "webhook"
SIGNATURE_HEADER = "X-Callable-Signature"
TIMEOUT_SECONDS = 10.0
TOLERANCE_SECONDS = 300


def webhook_lane(conversation_id: str | None) -> str:
    """A conversation's handoff webhooks go out one at a time, in order."""
    return f"webhook:{conversation_id}"


def sign_payload(secret: bytes, body: bytes, timestamp: int) -> str:
    """The signature header value for ``body`` sent at ``timestamp``: ``t=<t>,v1=<hex>``."""
    digest = hmac.new(secret, f"{timestamp}.".encode("ascii") + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify_signature(
    secret: bytes,
    body: bytes,
    header: str,
    *,
    tolerance_seconds: int = TOLERANCE_SECONDS,
    now: float | None = None,
) -> bool:
    """Whether ``header`` is a valid signature of ``body`` made with ``secret`` within the tolerance.

    Several ``v1=`` values are accepted (a sender rotating its secret signs with both); the
    comparison is constant-time. A malformed header is simply not valid.
    """
    timestamp: int | None = None
    signatures: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isdigit():
            timestamp = int(value)
        elif key == "v1" and value:
            signatures.append(value)
    if timestamp is None or not signatures:
        return False
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_seconds:
        return False
    expected = sign_payload(secret, body, timestamp).split("v1=", 1)[1]
    return any(hmac.compare_digest(expected.encode(), candidate.encode("utf-8", "replace")) for candidate in signatures)


async def _secret(runtime: Runtime, workspace_id: str, reference: dict[str, Any] | None) -> bytes | None:
    if not reference:
        return None
    try:
        integration = await read_named_integration(runtime, workspace_id, reference["integration"])
    except NotFound:
        integration = None
    if integration is None or reference["field"] not in integration.secret_fields:
        raise PermanentFailure(
            f"webhook secret {reference['integration']}.{reference['field']} is not connected in this workspace"
        )
    return read_integration_secret(runtime, integration, reference["field"]).encode()


async def deliver_webhook(runtime: Runtime, job: Job) -> None:
    """POST the job's payload, signed; 5xx, 429 and network errors are retried by the job system."""
    webhook = job.payload["webhook"]
    conversation = await read_conversation(runtime, job.workspace_id, job.payload["conversation_id"])
    payload = {
        "event": "conversation.handed_off",
        "workspace_id": job.workspace_id,
        "conversation_id": job.payload["conversation_id"],
        "channel_id": conversation.channel_id if conversation else None,
        "customer": conversation.external_user_id if conversation else None,
        "reason": job.payload.get("reason"),
    }
    body = json.dumps(payload, separators=(",", ":")).encode()
    headers = {"Content-Type": "application/json", "User-Agent": "callable-agents-webhook/1"}
    secret = await _secret(runtime, job.workspace_id, webhook.get("secret"))
    if secret is not None:
        headers[SIGNATURE_HEADER] = sign_payload(secret, body, int(time.time()))
    try:
        targets = await guarded_targets(httpx.URL(webhook["url"]), allow_private=runtime.settings.allow_private_urls)
    except UnsafeAddress as exc:
        raise PermanentFailure(f"webhook {webhook['url']} refused: {exc}") from None
    except HostNotFound as exc:
        raise RetryLater(f"webhook {webhook['url']}: {exc}") from None
    client = shared_http_client(runtime)
    try:
        target = targets[0]
        response = await client.post(
            target.url,
            content=body,
            headers={**headers, **target.headers},
            extensions=target.extensions,
            timeout=TIMEOUT_SECONDS,
        )
    except httpx.HTTPError as exc:
        raise RetryLater(f"webhook {webhook['url']} unreachable: {type(exc).__name__}") from None
    if response.status_code >= 500 or response.status_code == 429:
        raise RetryLater(f"webhook answered {response.status_code}")
    if response.status_code >= 400:
        raise PermanentFailure(f"webhook refused the event with {response.status_code}")
    await complete_job(runtime, job)
