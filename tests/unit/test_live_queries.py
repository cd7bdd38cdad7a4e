"""The api's side of number checks and groups on the memory store, with a scripted runner:
the session's state decides 409 vs 503, the cache spares WhatsApp and the limit, a group create
with an Idempotency-Key is done once (also when its first answer was lost), and the runner client
turns every failure to get an answer into 503 runner_unreachable."""

from __future__ import annotations

import socket
import time
from typing import Any

import pytest

from wagate.adapters.memory import FixedClock, MemoryStore
from wagate.adapters.runner_client import RunnerClient
from wagate.adapters.tasks import INTERNAL_TOKEN_HEADER, OidcAuth, SharedSecretAuth
from wagate.contracts import SessionDoc
from wagate.contracts.directory import CreateGroupRequest, RunnerQuery
from wagate.domain.ids import new_session_id
from wagate.domain.sessions import SessionState
from wagate.errors import Conflict, DependencyUnavailable, RateLimited, ValidationFailed
from wagate.services.contacts import NumberChecks
from wagate.services.directory import SessionDirectory
from wagate.services.groups import Groups
from wagate.services.live_queries import LiveQueries

SID = new_session_id()
GROUP = {
    "id": "120363100000000001",
    "jid": "120363100000000001@g.us",
    "subject": "Order 1042",
    "size": 2,
    "created_at": "2026-01-01T00:00:00Z",
    "participants": [],
}


class ScriptedRunner:
    """Answers like a runner; `fail` makes the next asks raise it."""

    def __init__(self) -> None:
        self.asked: list[RunnerQuery] = []
        self.fail: Exception | None = None
        self.groups: list[dict[str, Any]] = []

    def ask(self, shard: int, query: RunnerQuery) -> Any:
        self.asked.append(query)
        if self.fail is not None:
            raise self.fail
        if query.q == "check_numbers":
            return [
                {"number": n, "on_whatsapp": not n.startswith("999"), "jid": f"{n}@s.whatsapp.net"}
                for n in query.numbers
            ]
        if query.q == "create_group":
            self.groups.append(GROUP)
            return GROUP
        if query.q == "groups":
            return self.groups
        if query.q == "group":
            return GROUP
        raise AssertionError(query.q)


@pytest.fixture
def parts() -> tuple[MemoryStore, FixedClock, ScriptedRunner, LiveQueries]:
    store = MemoryStore()
    store.collection("sessions", SessionDoc).put(
        SessionDoc(id=SID, tenant_id="ten_1", shard=0, state=SessionState.CONNECTED)
    )
    runner = ScriptedRunner()
    return store, FixedClock(), runner, LiveQueries(SessionDirectory(store), runner)


def set_state(store: MemoryStore, state: SessionState) -> None:
    store.collection("sessions", SessionDoc).patch(SID, {"state": state})


def test_a_session_that_needs_the_user_is_409_and_one_reconnecting_is_503(parts: Any) -> None:
    store, _, runner, live = parts
    query = RunnerQuery(session_id=SID, q="groups")
    set_state(store, SessionState.LOGGED_OUT)
    with pytest.raises(Conflict) as needs_user:
        live.ask("ten_1", query)
    assert needs_user.value.code == "session_not_connected"
    set_state(store, SessionState.RECONNECTING)
    with pytest.raises(DependencyUnavailable) as later:
        live.ask("ten_1", query)
    assert later.value.code == "session_not_connected" and later.value.retry_after
    assert runner.asked == []


def test_cached_numbers_are_not_asked_again_nor_counted(parts: Any) -> None:
    store, clock, runner, live = parts
    checks = NumberChecks(store, clock, live)
    admitted: list[int] = []
    first = checks.check(
        "ten_1", SID, ["+15550001111", "99955501234"], fresh=False, admit=admitted.append
    )
    assert [(i.on_whatsapp, i.cached) for i in first.items] == [(True, False), (False, False)]
    clock.advance(3600)
    again = checks.check(
        "ten_1", SID, ["+15550001111", "+15550002222"], fresh=False, admit=admitted.append
    )
    assert [i.cached for i in again.items] == [True, False]
    assert again.items[0].checked_at == first.items[0].checked_at
    assert admitted == [2, 1] and [q.numbers for q in runner.asked][-1] == ["15550002222"]
    clock.advance(24 * 3600)  # past the cache's 24 hours: asked again
    stale = checks.check("ten_1", SID, ["+15550001111"], fresh=False, admit=admitted.append)
    assert stale.items[0].cached is False and admitted[-1] == 1


def test_a_refused_limit_asks_nothing_and_a_bad_number_names_its_place(parts: Any) -> None:
    store, clock, runner, live = parts
    checks = NumberChecks(store, clock, live)

    def refuse(count: int) -> None:
        raise RateLimited("no", retry_after=60)

    with pytest.raises(RateLimited):
        checks.check("ten_1", SID, ["+15550001111"], fresh=False, admit=refuse)
    with pytest.raises(ValidationFailed) as bad:
        checks.check("ten_1", SID, ["+15550001111", "hello"], fresh=False, admit=refuse)
    assert bad.value.field == "numbers.1"
    assert runner.asked == []


def test_a_create_with_a_key_is_done_once_even_when_its_answer_was_lost(parts: Any) -> None:
    store, clock, runner, live = parts
    groups = Groups(store, clock, live)
    body = CreateGroupRequest(subject="Order 1042", participants=["+15550001111"])

    def create(key: str, fingerprint: str = "f1") -> Any:
        return groups.create("ten_1", SID, body, idempotency_key=key, fingerprint=fingerprint)

    assert create("k1").id == GROUP["id"]
    assert create("k1").id == GROUP["id"]
    assert [q.q for q in runner.asked] == ["create_group"]
    with pytest.raises(Conflict):
        create("k1", fingerprint="other body")

    runner.fail = DependencyUnavailable("no answer", code="runner_unreachable")
    with pytest.raises(DependencyUnavailable):
        create("k2")  # the runner made it, but the answer did not come back
    runner.fail = None
    runner.asked.clear()
    assert create("k2").id == GROUP["id"]
    assert [q.q for q in runner.asked] == ["groups", "group"]  # found, not made again


def test_the_runner_client_answers_503_when_the_runner_is_not_there() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = RunnerClient(lambda shard: f"http://127.0.0.1:{port}", SharedSecretAuth("s"))
    with pytest.raises(DependencyUnavailable) as refused:
        client.ask(0, RunnerQuery(session_id=SID, q="groups"))
    assert refused.value.code == "runner_unreachable" and refused.value.retry_after == 5


def test_a_runner_that_does_not_answer_is_503_within_the_bounded_wait() -> None:
    with socket.socket() as listener:  # accepts the connection, never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        client = RunnerClient(
            lambda shard: f"http://127.0.0.1:{port}", SharedSecretAuth("s"), wait_s=0.5
        )
        started = time.monotonic()
        with pytest.raises(DependencyUnavailable) as late:
            client.ask(0, RunnerQuery(session_id=SID, q="groups"))
        assert time.monotonic() - started < 3
    assert late.value.code == "runner_unreachable" and "in time" in late.value.message


def test_the_runner_client_authenticates_like_tasks_do() -> None:
    minted: list[str] = []
    local = RunnerClient(lambda shard: "http://runner", SharedSecretAuth("s3cret"))
    assert local._headers("http://runner")[INTERNAL_TOKEN_HEADER] == "s3cret"
    cloud = RunnerClient(
        lambda shard: "https://runner-0",
        OidcAuth("tasks@example.iam.gserviceaccount.com"),
        mint_token=lambda audience: minted.append(audience) or "tok",
    )
    assert cloud._headers("https://runner-0")["Authorization"] == "Bearer tok"
    cloud._headers("https://runner-0")
    assert minted == ["https://runner-0"]  # reused, not minted per call


def test_a_created_group_is_found_by_its_key_without_asking_the_runner(parts: Any) -> None:
    """What the api answers at its rate limit for a repeat of a create (functions/limits.py)."""
    store, clock, runner, live = parts
    groups = Groups(store, clock, live)
    body = CreateGroupRequest(subject="Order 1042", participants=["+15550001111"])
    assert groups.created("ten_1", SID, "k1", "f1") is None  # never used
    groups.create("ten_1", SID, body, idempotency_key="k1", fingerprint="f1")
    runner.asked.clear()
    found = groups.created("ten_1", SID, "k1", "f1")
    assert found is not None and found.id == GROUP["id"]
    assert runner.asked == []
    with pytest.raises(Conflict):
        groups.created("ten_1", SID, "k1", "another body")
    assert groups.created("ten_2", SID, "k1", "f1") is None  # another tenant's key space
    runner.fail = DependencyUnavailable("no answer", code="runner_unreachable")
    with pytest.raises(DependencyUnavailable):
        groups.create("ten_1", SID, body, idempotency_key="k2", fingerprint="f1")
    assert groups.created("ten_1", SID, "k2", "f1") is None  # unknown: not a result to replay
