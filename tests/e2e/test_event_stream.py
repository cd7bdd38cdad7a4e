"""The live event stream on the whole system: Server-Sent Events from the tenant's event log,
held for a bounded time (5 s in these tests, the function's timeout in the cloud), resumed
with Last-Event-ID with nothing lost and nothing repeated, filtered by session and type."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest

from tests.e2e.system import System, eventually
from tests.e2e.test_messaging import recipient
from tests.e2e.test_sessions import phone

pytestmark = pytest.mark.integration
FROM_THE_START = "0000000000000-evt_" + "0" * 32


class Received:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []  # id, type, data (the event)
        self.last_id: str | None = None


def read_stream(system: System, key: str, into: Received, **kw: Any) -> Received:
    """Read one stream until the server ends it (its hold time)."""
    headers = {"Authorization": f"Bearer {key}", **kw.pop("headers", {})}
    with system.api.stream("GET", "/v1/events/stream", headers=headers, **kw) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        message: dict[str, str] = {}
        for line in response.iter_lines():
            if line == "":
                if "id" in message:
                    into.last_id = message["id"]
                if "data" in message:
                    event = json.loads(message["data"])
                    into.events.append({"id": message["id"], "type": message["event"], **event})
                message = {}
            elif not line.startswith(":"):
                name, _, value = line.partition(":")
                message[name] = value.removeprefix(" ")
    return into


def test_the_stream_resumes_from_last_event_id_with_nothing_lost(system: System) -> None:
    key = system.tenant(name="streamer")["api_key"]
    off = system.call("GET", "/v1/events/stream", key)
    assert off.status_code == 409 and off.json()["error"]["details"][0]["field"] == "log"
    on = system.call("PATCH", "/v1/events/settings", key, json={"log": True})
    assert on.status_code == 200 and on.json() == {"log": True, "pubsub_topic": None}

    first = Received()
    reader = threading.Thread(target=read_stream, args=(system, key, first))
    reader.start()  # from now on, for 5 s
    number = phone(60)
    session = system.paired_session(key, number)
    sid = session["id"]
    reader.join(timeout=30)
    assert not reader.is_alive()
    assert "connected" in [e["data"]["state"] for e in first.events if e["type"] == "session.state"]
    assert first.last_id is not None

    # While no client is connected: a reconnect and a message walking to read.
    system.control("drop", phone=number, reason=428)
    eventually(lambda: system.session(key, sid)["last_reason"] == 428)
    system.wait_state(key, sid, "connected")
    sent = system.send(key, sid, recipient(60), "streamed")
    system.wait_status(key, sent["id"], ("read",))

    second = read_stream(system, key, Received(), headers={"Last-Event-ID": first.last_id})
    everything = read_stream(system, key, Received(), params={"last_event_id": FROM_THE_START})

    resumed = [e["id"] for e in first.events + second.events]
    assert resumed == [e["id"] for e in everything.events][: len(resumed)]
    assert len(set(resumed)) == len(resumed)  # nothing twice
    kinds = {(e["type"], e["data"].get("state") or e["data"].get("status")) for e in second.events}
    assert {("session.state", "reconnecting"), ("message.status", "read")} <= kinds

    only_states = read_stream(
        system,
        key,
        Received(),
        params={"last_event_id": FROM_THE_START, "session_id": sid, "types": "session.state"},
    )
    states = [e["id"] for e in everything.events if e["type"] == "session.state"]
    assert [e["id"] for e in only_states.events] == states  # one session: all its states
    bad = system.call("GET", "/v1/events/stream", key, params={"types": "message.lost"})
    assert bad.status_code == 400
    resume_garbage = system.call("GET", "/v1/events/stream", key, headers={"Last-Event-ID": "x"})
    assert resume_garbage.status_code == 400
    other = system.tenant(name="not the streamer")["api_key"]
    system.call("PATCH", "/v1/events/settings", other, json={"log": True})
    theirs = system.call("GET", "/v1/events/stream", other, params={"session_id": sid})
    assert theirs.status_code == 404
