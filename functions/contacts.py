"""POST /v1/sessions/{id}/contacts:check — which numbers are on WhatsApp (docs/messaging.md,
"Groups and number checks"). Registered on the api's router by functions.api (`register`)."""

from __future__ import annotations

from typing import Any

from functions import auth
from functions.app import gateway
from functions.limits import rate_limit
from functions.web import Call, Doc, Router
from wagate.contracts.directory import CheckNumbersRequest, CheckNumbersResult
from wagate.services.ratelimit import CONTACT_CHECKS


def check_numbers(call: Call) -> Any:
    g = gateway()
    tenant = auth.tenant(call, g.tenants)
    body = call.json_body(CheckNumbersRequest)
    session_id = call.args["session_id"]
    g.directory.owned(tenant.id, session_id)  # 404 before a token is counted

    def admit(count: int) -> None:
        for _ in range(count):  # one token per number asked of WhatsApp
            rate_limit(call, tenant, CONTACT_CHECKS, subject=session_id)

    return g.number_checks.check(tenant.id, session_id, body.numbers, fresh=body.fresh, admit=admit)


def register(router: Router) -> None:
    router.route(
        "/v1/sessions/<session_id>/contacts:check",
        ["POST"],
        Doc(
            "Which numbers are on WhatsApp (at most 50), with their JID and LID; answers are "
            "cached for 24 hours, and each number asked of WhatsApp counts against the "
            "session's limit",
            body=CheckNumbersRequest,
            responses={
                200: CheckNumbersResult,
                409: "The session is not paired or was stopped (session_not_connected)",
                503: "The session is reconnecting, or its runner cannot be reached (Retry-After)",
                501: "The session's engine cannot do this (not_supported)",
            },
            tags=("contacts",),
            rate_limit="100 numbers per hour per session",
        ),
    )(check_numbers)
