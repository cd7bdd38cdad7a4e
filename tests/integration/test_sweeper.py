"""The sweeper function on the real emulators: a message whose task was never created (Cloud
Tasks was down at accept) is enqueued; one whose task finished without moving its status gets
a new task generation; one whose task is alive is only moved back in the line; a scheduled one
that is not due is left alone; the endpoint needs the internal token. Dead
letters growing raise an alert once per cooldown, resolved when the growth stops; session
alerts whose cause is gone are resolved by the sweep."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.factories import text_message
from tests.integration.api_client import Api
from wagate.adapters.firestore import FirestoreStore, make_client
from wagate.adapters.memory import FixedClock
from wagate.adapters.tasks import INTERNAL_TOKEN_HEADER
from wagate.contracts import AlertDoc, MessageDoc, PendingSend, SessionDoc, TextContent
from wagate.domain.ids import new_message_id, send_task_name
from wagate.domain.messages import MessageStatus
from wagate.domain.sessions import SessionState
from wagate.errors import TaskAlreadyExists
from wagate.ports import TaskSpec
from wagate.queues import send_queue
from wagate.services.alerts import Alerts, alert_id
from wagate.services.sweeper import DeadLetterReading, DeadLetterWatch

pytestmark = pytest.mark.integration


@pytest.fixture
def sweeper(emulators: Any, firestore_env: dict[str, str]) -> Iterator[Api]:
    emulators.provision_project(firestore_env["WAGATE_PROJECT_ID"])
    yield Api(target="sweeper")


def stuck(age: timedelta, **kw: Any) -> MessageDoc:
    mid = new_message_id()
    at = datetime.now(UTC) - age
    return text_message(
        mid,
        tenant_id="ten_x",
        session_id="ses_x",
        to="+15551234567",
        content=TextContent(body="stuck"),
        created_at=at,
        updated_at=at,
        **kw,
    )


def task_exists(name: str) -> bool:
    from functions.app import gateway

    try:
        gateway().queue.enqueue(
            TaskSpec(
                queue=send_queue("wagate", 0),
                name=name,
                url="http://127.0.0.1:9/x",
                body=b"{}",
                schedule_time=datetime.now(UTC) + timedelta(days=1),
            )
        )
    except TaskAlreadyExists:
        return True
    return False


def forget_task(name: str) -> None:
    """Create and delete a task: it is gone, but the queue remembers its name for a while."""
    from functions.app import gateway
    from wagate.adapters.tasks import make_client

    queue = send_queue("wagate", 0)
    gateway().queue.enqueue(
        TaskSpec(
            queue=queue,
            name=name,
            url="http://127.0.0.1:9/x",
            body=b"{}",
            schedule_time=datetime.now(UTC) + timedelta(days=1),
        )
    )
    settings = gateway().settings
    make_client(settings.tasks_endpoint).delete_task(
        name=f"projects/{settings.project_id}/locations/{settings.region}/queues/{queue}"
        f"/tasks/{name}"
    )


def test_stuck_messages_are_enqueued_and_scheduled_ones_left_alone(sweeper: Api) -> None:
    from functions.app import gateway

    store = gateway().store
    messages = store.collection("messages", MessageDoc)
    entries = store.collection("pending", PendingSend)
    never_enqueued = stuck(timedelta(minutes=3))
    finished = stuck(timedelta(minutes=20))  # its task completed, the status never moved
    waiting = stuck(timedelta(minutes=3))  # its task is in the queue (a backlog, a retry)
    fresh = stuck(timedelta(seconds=10))
    scheduled = stuck(timedelta(minutes=3), send_at=datetime.now(UTC) + timedelta(hours=2))
    sent = stuck(timedelta(minutes=3), status=MessageStatus.SENT)  # its entry's delete was lost
    docs = [never_enqueued, finished, waiting, fresh, scheduled, sent]
    messages.put_many(docs)
    entries.put_many([PendingSend.of(d) for d in docs])  # as the api writes them
    forget_task(send_task_name(finished.id, 0))
    assert not task_exists(send_task_name(waiting.id, 0))  # creates it
    secret = gateway().settings.internal_secret.get_secret_value()  # type: ignore[union-attr]
    response = sweeper.call("POST", "/sweep", headers={INTERNAL_TOKEN_HEADER: secret})
    assert response.status_code == 200, response.get_json()
    assert response.get_json() == {
        "reenqueued": 2,
        "regenerated": 1,
        "enqueue_failures": 0,
        "alive": 1,
        "left_behind": 1,
        "dead_letters": {"count": 0, "growth": 0},
        "alerts_resolved": [],
    }
    assert task_exists(send_task_name(never_enqueued.id, 0))
    assert messages.get(finished.id).task_generation == 1  # type: ignore[union-attr]
    assert entries.get(finished.id).task_generation == 1  # type: ignore[union-attr]
    assert task_exists(send_task_name(finished.id, 1))
    assert not task_exists(send_task_name(fresh.id, 0))
    assert not task_exists(send_task_name(scheduled.id, 0))
    assert not task_exists(send_task_name(sent.id, 0)) and entries.get(sent.id) is None
    # The live one moved to the back of the line: the next sweeps look at others first.
    touched = entries.get(waiting.id)
    assert touched is not None and touched.checked_at > waiting.created_at
    assert messages.get(waiting.id) == waiting  # the message itself is not written
    # Sweeping again is harmless: every task is in the queue now, and was just looked at.
    again = sweeper.call("POST", "/sweep", headers={INTERNAL_TOKEN_HEADER: secret})
    assert again.status_code == 200
    assert again.get_json()["reenqueued"] == 0 and again.get_json()["regenerated"] == 0
    assert again.get_json()["alive"] == 0


def test_the_sweeper_refuses_calls_without_the_internal_token(sweeper: Api) -> None:
    for headers in ({}, {INTERNAL_TOKEN_HEADER: "nope"}):
        response = sweeper.call("POST", "/sweep", headers=headers)
        assert response.status_code == 401
        assert response.get_json()["error"]["code"] == "unauthenticated"


def dead(count: int) -> list[MessageDoc]:
    return [stuck(timedelta(minutes=1), status=MessageStatus.DEAD) for _ in range(count)]


def test_dead_letters_growing_is_raised_once_and_resolved_when_growth_stops(
    firestore_env: dict[str, str],
) -> None:
    store = FirestoreStore(make_client(firestore_env["WAGATE_PROJECT_ID"]))
    messages = store.collection("messages", MessageDoc)
    clock = FixedClock()
    alerts = Alerts(store, clock)
    watch = DeadLetterWatch(store, clock, alerts, window=timedelta(minutes=15), grow_over=10)
    messages.put_many(dead(3))
    assert watch.check() == DeadLetterReading(count=3, growth=0, alert=None)
    clock.advance(60)
    messages.put_many(dead(12))
    assert watch.check() == DeadLetterReading(count=15, growth=12, alert="raised")
    clock.advance(60)
    messages.put_many(dead(12))
    assert watch.check() == DeadLetterReading(count=27, growth=24, alert=None)  # cooldown
    # Past the first samples, still growing a little: the alert stays open.
    clock.advance(15 * 60)
    messages.put_many(dead(2))
    reading = watch.check()
    assert reading.alert is None and 0 < reading.growth <= 10
    alert = store.collection("health_alerts", AlertDoc).get(
        alert_id("dead_letters_growing", "messages")
    )
    assert alert is not None and alert.count == 1 and alert.resolved_at is None
    # No new dead letter for a whole window: resolved.
    clock.advance(16 * 60)
    assert watch.check() == DeadLetterReading(count=29, growth=0, alert="resolved")
    assert alerts.open_alerts() == []


def test_the_sweep_resolves_session_alerts_whose_cause_is_gone(sweeper: Api) -> None:
    from functions.app import gateway

    g = gateway()
    sessions = g.store.collection("sessions", SessionDoc)
    sessions.put(SessionDoc(id="ses_ok", tenant_id="ten_x", shard=0, state=SessionState.CONNECTED))
    Alerts(g.store, g.clock).raise_alert("session_failing", "ses_ok", "5 reconnects failed")
    secret = g.settings.internal_secret.get_secret_value()  # type: ignore[union-attr]
    response = sweeper.call("POST", "/sweep", headers={INTERNAL_TOKEN_HEADER: secret})
    assert response.status_code == 200
    assert response.get_json()["alerts_resolved"] == [alert_id("session_failing", "ses_ok")]
    assert Alerts(g.store, g.clock).open_alerts() == []
