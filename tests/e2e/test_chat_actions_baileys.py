"""The chat actions' e2e on the Baileys engine: the whole stack with runners on Baileys against
the WhatsApp-protocol fake, which decrypts what the recipient gets (emulators/whatsapp/
actions.mjs). An edit and a revoke accepted before their message was sent reach the recipient
right after it, in order with the chat's other sends."""

from __future__ import annotations

from typing import Any

import pytest

from tests.chaos.test_chaos_baileys import Fake, _pair
from tests.chaos.test_chaos_baileys import baileys_stack as baileys_stack  # the fixture
from tests.e2e.system import System
from tests.e2e.test_chat_actions import DONE, accepted
from tests.e2e.test_messaging import recipient
from tests.e2e.test_sessions import phone

pytestmark = pytest.mark.integration


def test_an_edit_and_a_revoke_reach_the_recipient_in_order_on_baileys(
    baileys_stack: System,
) -> None:
    system = baileys_stack
    fake = Fake(system.stack.url["whatsapp"])
    tenant = system.tenant("actions-baileys", limits={"pacing_per_second": 50, "pacing_burst": 50})
    key = tenant["api_key"]
    session = _pair(system, fake, key, phone(70))
    to = recipient(8)
    first = system.send(key, session["id"], to, "Pickup at 9")
    edit = accepted(
        system.call("PATCH", f"/v1/messages/{first['id']}", key, json={"text": "Pickup at 10"})
    )
    second = system.send(key, session["id"], to, "Bring the receipt")
    revoke = accepted(system.call("DELETE", f"/v1/messages/{first['id']}", key))
    third = system.send(key, session["id"], to, "See you")
    done: list[dict[str, Any]] = [first, edit, second, revoke, third]
    for message in done:
        system.wait_status(key, message["id"], DONE, timeout=60)

    got = fake.received(to)
    assert [(m["id"], m.get("kind")) for m in got] == [
        (first["wa_id"], "text"),
        (edit["wa_id"], "edit"),
        (second["wa_id"], "text"),
        (revoke["wa_id"], "revoke"),
        (third["wa_id"], "text"),
    ], got
    assert got[1]["content"] == {"message_id": first["wa_id"], "body": "Pickup at 10"}
    assert got[3]["content"] == {"message_id": first["wa_id"]}
    shown = system.message(key, first["id"])
    assert [e["text"] for e in shown["edits"]] == ["Pickup at 10"]
    assert shown["revoked"]["action_id"] == revoke["id"]
