"""``post_signed_webhook``: a form posted the way Twilio posts it validates where our server
validates it, for the public URL Twilio was given even when the client reaches the app
in-process."""

from __future__ import annotations

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from twilio.request_validator import RequestValidator

from callable_agents.testing import inbound_params, post_signed_webhook

TOKEN = "fake-auth-token-0001"
ACCOUNT = "AC" + "a1" * 16
PUBLIC_URL = "https://bot.example.com/channels/whatsapp/abc/inbound"


async def test_a_signed_post_validates_for_the_url_twilio_was_given() -> None:
    received: list[tuple[bool, str]] = []

    async def inbound(request: Request) -> Response:
        form = await request.form()
        ok = RequestValidator(TOKEN).validate(PUBLIC_URL, form, request.headers.get("X-Twilio-Signature", ""))
        received.append((ok, str(form["Body"])))
        return Response(status_code=200 if ok else 403)

    app = Starlette(routes=[Route("/channels/whatsapp/abc/inbound", inbound, methods=["POST"])])
    params = inbound_params(ACCOUNT, "whatsapp:+15551234567", "whatsapp:+14155238886", "Are you open?")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as client:
        good = await post_signed_webhook(client, "/channels/whatsapp/abc/inbound", TOKEN, params, signed_url=PUBLIC_URL)
        wrong_url = await post_signed_webhook(client, "/channels/whatsapp/abc/inbound", TOKEN, params)
        wrong_token = await post_signed_webhook(client, "/channels/whatsapp/abc/inbound", "other", params, signed_url=PUBLIC_URL)
    assert [good.status_code, wrong_url.status_code, wrong_token.status_code] == [200, 403, 403]
    assert received == [(True, "Are you open?"), (False, "Are you open?"), (False, "Are you open?")]
