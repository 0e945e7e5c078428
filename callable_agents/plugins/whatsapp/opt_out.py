"""Opt-out and opt-in as Twilio defines them: which inbound messages change a customer's choice.

Twilio honours these English keywords on its own (the customer's whole message, any case):
opt-out ``STOP``, ``STOPALL``, ``UNSUBSCRIBE``, ``CANCEL``, ``END``, ``QUIT``, ``REVOKE``,
``OPTOUT``; opt-in ``START``, ``YES``, ``UNSTOP``; ``HELP`` and ``INFO`` ask for help and change
nothing. After an opt-out Twilio refuses sends to the customer (error 21610) until they opt in.
A Messaging Service with Advanced Opt-Out (its own, possibly localised keywords) tells us
which kind a message was in ``OptOutType`` (``STOP``, ``START`` or ``HELP``); that parameter,
when present and known, decides, and the body is read only without it. So a customer's
``START`` (or ``yes``) ends an opt-out whether or not Twilio labelled it.
"""

from __future__ import annotations

from collections.abc import Mapping

OPT_OUT_KEYWORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"})
OPT_IN_KEYWORDS = frozenset({"START", "YES", "UNSTOP"})
HELP_KEYWORDS = frozenset({"HELP", "INFO"})
# OptOutType -> the conversation's opted_out (None: no change)
OPT_OUT_TYPES: Mapping[str, bool | None] = {"STOP": True, "START": False, "HELP": None}
_TRAILING = " \t\r\n.!"


def keyword_of(body: str) -> str | None:
    """The opt-out, opt-in or help keyword a message is (the whole of it, any case, trailing
    ``.``/``!`` allowed), or None."""
    word = body.strip().rstrip(_TRAILING).upper()
    if word in OPT_OUT_KEYWORDS or word in OPT_IN_KEYWORDS or word in HELP_KEYWORDS:
        return word
    return None


def opt_out_change(opt_out_type: str | None, body: str | None) -> bool | None:
    """What an inbound message does to the customer's choice: True (opted out), False
    (opted back in) or None (nothing). ``OptOutType`` decides when Twilio sent a known one."""
    labelled = (opt_out_type or "").strip().upper()
    if labelled in OPT_OUT_TYPES:
        return OPT_OUT_TYPES[labelled]
    keyword = keyword_of(body or "")
    if keyword in OPT_OUT_KEYWORDS:
        return True
    if keyword in OPT_IN_KEYWORDS:
        return False
    return None
