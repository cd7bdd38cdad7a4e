"""Pub/Sub delivery on the whole system, on the Pub/Sub emulator: a tenant's topic receives
the same events as its webhook (same ids, type and id in the attributes), in order per chat."""

from __future__ import annotations

import base64
import json
import secrets
from typing import Any

import httpx
import pytest

from tests.e2e.receiver import webhook_receiver
from tests.e2e.system import System, eventually
from tests.e2e.test_messaging import recipient
from tests.e2e.test_sessions import phone

pytestmark = pytest.mark.integration


class Subscription:
    """A pull subscription with message ordering on the stack's emulator (REST)."""

    def __init__(self, system: System, topic: str) -> None:
        self.base = system.stack.url["pubsub"] + "/v1/"
        self.name = f"projects/{system.stack.config.project}/subscriptions/t-{secrets.token_hex(4)}"
        created = httpx.put(
            self.base + self.name, json={"topic": topic, "enableMessageOrdering": True}
        )
        assert created.status_code == 200, created.text
        self.messages: list[dict[str, Any]] = []

    def pull(self) -> list[dict[str, Any]]:
        answer = httpx.post(self.base + self.name + ":pull", json={"maxMessages": 100}, timeout=30)
        assert answer.status_code == 200, answer.text
        received = answer.json().get("receivedMessages", [])
        if received:
            ack = [r["ackId"] for r in received]
            httpx.post(self.base + self.name + ":acknowledge", json={"ackIds": ack}, timeout=30)
        self.messages += [r["message"] for r in received]
        return self.messages


def test_the_topic_gets_the_webhook_events_same_ids_ordered_per_chat(system: System) -> None:
    stack = system.stack
    topic = f"projects/{stack.config.project}/topics/t-{secrets.token_hex(4)}"
    stack.create_topic(topic)
    subscription = Subscription(system, topic)
    with webhook_receiver() as hooks:
        tenant = system.tenant(name="pubsub", webhook_url=hooks.url + "/hooks")
        key = tenant["api_key"]
        admin = {"Authorization": f"Bearer {stack.admin_key}"}
        path = f"/v1/admin/tenants/{tenant['id']}/pubsub"
        bad = system.api.put(path, json={"topic": "my-topic"}, headers=admin)
        assert bad.status_code == 400
        put = system.api.put(path, json={"topic": topic}, headers=admin)
        assert put.status_code == 200 and put.json()["topic"] == topic, put.text

        number = phone(70)
        sid = system.paired_session(key, number)["id"]
        chats = {"+15557770101": ["a1", "a2", "a3"], "+15557770202": ["b1", "b2"]}
        for text_a, text_b in zip(
            chats["+15557770101"], [*chats["+15557770202"], None], strict=True
        ):
            system.control(
                "inbound", to_phone=number, **{"from": "+15557770101"}, content={"body": text_a}
            )
            if text_b:
                system.control(
                    "inbound", to_phone=number, **{"from": "+15557770202"}, content={"body": text_b}
                )
        sent = system.send(key, sid, recipient(70), "ordered statuses")
        system.wait_status(key, sent["id"], ("read",))

        def webhook_ids() -> set[str] | None:
            events = hooks.events()
            received = [e for e in events if e["type"] == "message.received"]
            statuses = {e["data"]["status"] for e in events if e["type"] == "message.status"}
            return {e["id"] for e in events} if len(received) == 5 and "read" in statuses else None

        expected = eventually(webhook_ids, timeout=60)

        def published() -> list[dict[str, Any]] | None:
            """Both channels have the same events (the webhook's come later, through tasks)."""
            messages = subscription.pull()
            ids = {m["attributes"]["event_id"] for m in messages}
            delivered = {e["id"] for e in hooks.events()}
            return messages if ids >= expected and ids == delivered else None

        messages = eventually(published, timeout=60)
        ids = [m["attributes"]["event_id"] for m in messages]
        assert set(ids) == {e["id"] for e in hooks.events()}  # the same events
        assert len(ids) == len(set(ids))  # each once
        events = [json.loads(base64.b64decode(m["data"])) for m in messages]
        for message, event in zip(messages, events, strict=True):
            assert message["attributes"]["event_type"] == event["type"]
            assert message["attributes"]["event_id"] == event["id"]
        for chat, texts in chats.items():
            in_chat = [
                (m, e)
                for m, e in zip(messages, events, strict=True)
                if e["type"] == "message.received" and chat.lstrip("+") in e["data"]["chat"]
            ]
            assert [e["data"]["content"]["body"] for _, e in in_chat] == texts
            assert len({m["orderingKey"] for m, _ in in_chat}) == 1
        statuses = [e["data"]["status"] for e in events if e["type"] == "message.status"]
        assert statuses.index("delivered") < statuses.index("read")
        states = [e for e in events if e["type"] == "session.state"]
        assert {m["orderingKey"] for m, e in zip(messages, events, strict=True) if e in states} == {
            sid
        }
