"""LID addressing on the whole system: a customer who writes from a LID is named by both forms,
and a reply to the LID reaches the customer's phone (issue 22's "reply to a LID sender")."""

from __future__ import annotations

import pytest

from tests.e2e.system import System, eventually
from tests.e2e.test_sessions import phone

pytestmark = pytest.mark.integration

LID_BASE = 100_000_000_000_000  # the simulator's LID rule (simulator/PROTOCOL.md)


def test_a_reply_to_a_lid_sender_reaches_the_customers_phone(system: System) -> None:
    key = system.tenant(limits={"pacing_per_second": 50, "pacing_burst": 50})["api_key"]
    number = phone(21)
    session = system.paired_session(key, number)
    customer = phone(22)
    customer_phone = f"{customer.lstrip('+')}@s.whatsapp.net"
    customer_lid = f"{LID_BASE + int(customer.lstrip('+')) * 7}@lid"
    system.control(
        "inbound",
        to_phone=number,
        **{"from": customer},
        content={"body": "where is my order?"},
        addressing="lid",
    )

    def received() -> dict[str, object] | None:
        listed = system.call(
            "GET", f"/v1/sessions/{session['id']}/messages", key, params={"direction": "in"}
        )
        assert listed.status_code == 200, listed.text
        items = listed.json()["items"]
        return items[0] if items else None

    inbound = eventually(received, timeout=30)
    assert (inbound["sender"], inbound["chat"]) == (customer_lid, customer_lid)
    assert (inbound["sender_phone"], inbound["sender_lid"]) == (customer_phone, customer_lid)

    reply = system.send(key, session["id"], str(inbound["sender_lid"]), "on its way")
    assert reply["to"] == customer_lid
    system.wait_status(key, reply["id"], ("delivered", "read"))
    (got,) = system.received(customer)
    assert got["content"] == {"body": "on its way"} and got["addressing"] == "lid"
    assert got["from"] == number.lstrip("+")
