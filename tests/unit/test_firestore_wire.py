"""firestore_wire builds the same `Write` the client library builds for a create, byte for byte,
and leaves to the library what it does not encode itself."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from google.api_core.datetime_helpers import DatetimeWithNanoseconds
from google.auth.credentials import AnonymousCredentials
from google.cloud import firestore
from google.cloud.firestore_v1 import _helpers
from google.cloud.firestore_v1.types import write

from wagate.adapters import firestore_wire as wire
from wagate.adapters.firestore import add_create, add_update, to_fields, top_level
from wagate.contracts import (
    ContactContent,
    IdempotencyDoc,
    LocationContent,
    MediaContent,
    MessageDoc,
    MessageError,
    PendingSend,
    ReactionContent,
    TextContent,
)
from wagate.domain.messages import MessageStatus

PATH = "projects/p/databases/(default)/documents/messages/msg_1"
NOW = datetime(2026, 11, 23, 12, 30, 15, 123456, tzinfo=UTC)


def library_create(fields: dict[str, Any]) -> Any:
    (pb,) = _helpers.pbs_for_create(PATH, fields)
    return write.Write.pb(pb)


def assert_same_as_library(fields: dict[str, Any]) -> None:
    ours = wire.create_pb(PATH, fields)
    theirs = library_create(fields)
    assert ours == theirs
    assert ours.SerializeToString(deterministic=True) == theirs.SerializeToString(
        deterministic=True
    )


def message(content: Any, **kw: Any) -> MessageDoc:
    return MessageDoc(
        id="msg_1",
        tenant_id="ten_1",
        session_id="ses_1",
        shard=3,
        to="+15551230000",
        content=content,
        wa_id="3EB0ABC",
        status_times={MessageStatus.ACCEPTED.value: NOW},
        created_at=NOW,
        updated_at=NOW,
        **kw,
    )


@pytest.mark.parametrize(
    "content",
    [
        TextContent(body="héllo 👋", reply_to="msg_0"),
        MediaContent(type="image", url="https://example.com/a.png", caption="a"),  # type: ignore[arg-type]
        LocationContent(latitude=52.52, longitude=13.405, name="Berlin"),
        ContactContent(name="Ada", phone="+15550001"),
        ReactionContent(message_id="msg_0", emoji=""),
    ],
    ids=lambda c: c.type,
)
def test_every_message_kind_encodes_as_the_library_does(content: Any) -> None:
    doc = message(
        content,
        send_at=NOW + timedelta(hours=1),
        idempotency_key="k",
        errors=[MessageError(at=NOW, code="x", message="y", attempt=1)],
    )
    assert_same_as_library(to_fields(doc))
    assert_same_as_library(to_fields(PendingSend.of(doc)))


def test_the_idempotency_record_encodes_as_the_library_does() -> None:
    record = IdempotencyDoc(
        id="abc", tenant_id="ten_1", message_id="msg_1", request_sha256="f" * 64, created_at=NOW
    )
    assert_same_as_library(to_fields(record))


def test_every_plain_value_kind_encodes_as_the_library_does() -> None:
    assert_same_as_library(
        {
            "none": None,
            "true": True,
            "false": False,
            "zero": 0,
            "negative": -(2**63),
            "float": 1.5,
            "text": "x",
            "empty text": "",
            "bytes": b"\x00\xff",
            "utc": NOW,
            "naive": datetime(2026, 1, 1, 1, 2, 3, 456789),
            "offset": datetime(2026, 1, 1, tzinfo=timezone(timedelta(hours=5))),
            "before 1970": datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
            "nanos": DatetimeWithNanoseconds(2026, 1, 1, nanosecond=123456789, tzinfo=UTC),
            "empty map": {},
            "empty list": [],
            "nested": {"a": {"b": [1, {"c": []}, None]}},
            "tuple": (1, "two"),
            "dotted.name": 1,
            "`quoted`": 2,
        }
    )
    assert_same_as_library({})


@pytest.mark.parametrize(
    "fields",
    [
        {"at": firestore.SERVER_TIMESTAMP},
        {"where": firestore.GeoPoint(1.0, 2.0)},
        {"deep": {"set": {1, 2}}},
        {"": 1},
    ],
    ids=["sentinel", "geo point", "set", "empty name"],
)
def test_what_it_does_not_encode_is_left_to_the_library(fields: dict[str, Any]) -> None:
    with pytest.raises(wire.Unencodable):
        wire.create_pb(PATH, fields)


def test_add_create_falls_back_to_the_library_for_such_values() -> None:
    client = firestore.Client(project="p", credentials=AnonymousCredentials())
    ref = client.collection("messages").document("msg_1")
    ours, theirs = client.batch(), client.batch()
    add_create(ours, ref, {"at": firestore.SERVER_TIMESTAMP, "n": 1})
    theirs.create(ref, {"at": firestore.SERVER_TIMESTAMP, "n": 1})
    assert [write.Write.pb(w) for w in ours._write_pbs] == [
        write.Write.pb(w) for w in theirs._write_pbs
    ]
    assert ours._write_pbs[0].update_transforms  # the transform the library adds

    plain = client.batch()
    add_create(plain, ref, {"n": 1})
    assert plain._write_pbs == [library_create({"n": 1})]


# ------------------------------------------------------------------ updates


def library_update(field_updates: dict[str, Any]) -> Any:
    (pb,) = _helpers.pbs_for_update(PATH, field_updates, None)
    return write.Write.pb(pb)


@pytest.mark.parametrize(
    "field_updates",
    [
        # the runner's `sent` patch (FirestoreStore.patch_many): dotted paths into a map
        {"status": "sent", "status_times.sent": NOW, "updated_at": NOW, "attempts": 1},
        # a claim's changed fields (write_changes): quoted top-level names, a removed field
        top_level(
            {
                "status": "sending",
                "lease_token": 7,
                "status_times": {"accepted": NOW, "sending": NOW},
                "error": firestore.DELETE_FIELD,
                "history": [{"status": "accepted", "at": NOW}, None],
                "dotted.name": "kept whole",
            }
        ),
        # keys out of order, nested and empty maps, every plain value kind
        {
            "z": {"b": {"c": 1, "a": {}}, "a": []},
            "a": DatetimeWithNanoseconds(2026, 1, 1, nanosecond=123456789, tzinfo=UTC),
            "m.n.o": b"\x00",
            "`quoted.name`": (1.5, "two", None, False),
            "e": {},
            "naive": datetime(2026, 1, 1, 1, 2, 3, 456789),
        },
        to_fields(message(TextContent(body="whole document as an update"))),
    ],
    ids=["sent patch", "claim changes", "value kinds", "whole message"],
)
def test_updates_encode_as_the_library_does(field_updates: dict[str, Any]) -> None:
    ours = wire.update_pb(PATH, field_updates)
    theirs = library_update(field_updates)
    assert ours == theirs
    assert ours.SerializeToString(deterministic=True) == theirs.SerializeToString(
        deterministic=True
    )
    assert ours.current_document.exists  # update() never creates a document


@pytest.mark.parametrize(
    "field_updates",
    [
        {},
        {"at": firestore.SERVER_TIMESTAMP},
        {"tags": firestore.ArrayUnion(["a"])},
        {"m": {"gone": firestore.DELETE_FIELD}},
        {"a": 1, "a.b": 2},
        {"a..b": 1},
        {"where": firestore.GeoPoint(1.0, 2.0)},
    ],
    ids=["empty", "sentinel", "array union", "nested delete", "conflict", "bad path", "geo"],
)
def test_updates_it_does_not_encode_are_left_to_the_library(
    field_updates: dict[str, Any],
) -> None:
    with pytest.raises(wire.Unencodable):
        wire.update_pb(PATH, field_updates)


def test_add_update_falls_back_to_the_library_which_refuses_what_it_refuses() -> None:
    client = firestore.Client(project="p", credentials=AnonymousCredentials())
    ref = client.collection("messages").document("msg_1")
    ours, theirs = client.batch(), client.batch()
    add_update(ours, ref, {"at": firestore.SERVER_TIMESTAMP, "n": 1})
    theirs.update(ref, {"at": firestore.SERVER_TIMESTAMP, "n": 1})
    assert [write.Write.pb(w) for w in ours._write_pbs] == [
        write.Write.pb(w) for w in theirs._write_pbs
    ]
    assert ours._write_pbs[0].update_transforms  # the transform the library adds
    for refused in ({"a": 1, "a.b": 2}, {}, {"m": {"gone": firestore.DELETE_FIELD}}):
        with pytest.raises(Exception) as library_error:
            client.batch().update(ref, refused)
        with pytest.raises(library_error.type):  # the library's own error, from add_update
            add_update(client.batch(), ref, refused)

    plain = client.batch()
    add_update(plain, ref, {"status_times.sent": NOW})
    assert plain._write_pbs == [library_update({"status_times.sent": NOW})]
