"""firestore_wire.commit sends what the client library's WriteBatch.commit sends, and fails as it
fails: the same request and metadata (seen by a gRPC server standing in for Firestore), the
same documents written on the real emulator, the same exceptions."""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
import pytest
from google.api_core import exceptions as gexc
from google.auth.credentials import AnonymousCredentials
from google.cloud import firestore
from google.cloud.firestore_v1.types import firestore as firestore_types

from tests.factories import text_message
from wagate.adapters import firestore_wire as wire
from wagate.adapters.firestore import add_create, to_fields
from wagate.contracts import MessageDoc

pytestmark = pytest.mark.integration

CommitRequest = firestore_types.CommitRequest.pb()
CommitResponse = firestore_types.CommitResponse.pb()


def client_at(host: str, monkeypatch: pytest.MonkeyPatch) -> firestore.Client:
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", host)
    return firestore.Client(
        project=f"w-{uuid.uuid4().hex[:10]}", credentials=AnonymousCredentials()
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Recorder:
    """A gRPC server with Firestore's Commit method: it keeps each request and its metadata."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, dict[str, str]]] = []
        self.port = free_port()
        self.server = grpc.server(futures.ThreadPoolExecutor(2))
        handler = grpc.unary_unary_rpc_method_handler(
            self._commit,
            request_deserializer=CommitRequest.FromString,
            response_serializer=CommitResponse.SerializeToString,
        )
        self.server.add_generic_rpc_handlers(
            [
                grpc.method_handlers_generic_handler(
                    "google.firestore.v1.Firestore", {"Commit": handler}
                )
            ]
        )
        self.server.add_insecure_port(f"127.0.0.1:{self.port}")

    def _commit(self, request: Any, context: grpc.ServicerContext) -> Any:
        self.calls.append((request, dict(context.invocation_metadata())))
        return CommitResponse()


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    r = Recorder()
    r.server.start()
    yield r
    r.server.stop(None)


def a_batch(client: firestore.Client, doc: MessageDoc) -> Any:
    """Our raw-protobuf create and the library's proto-plus set, in one batch."""
    batch = client.batch()
    add_create(batch, client.collection("messages").document(doc.id), to_fields(doc))
    batch.set(client.collection("pending").document(doc.id), {"n": 1, "at": "x"})
    return batch


def test_the_request_and_its_metadata_are_the_librarys(
    recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = client_at(f"127.0.0.1:{recorder.port}", monkeypatch)
    doc = text_message("m1")
    a_batch(client, doc).commit(timeout=5)
    wire.commit(a_batch(client, doc), timeout=5)

    (library, library_meta), (ours, our_meta) = recorder.calls
    assert ours == library  # (map fields may serialize in another order)
    assert our_meta == library_meta  # routing header, resource prefix, auth, x-goog-api-client


def test_the_writes_land_together_and_a_conflict_is_the_librarys_error(
    firestore_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    client = client_at(firestore_env["FIRESTORE_EMULATOR_HOST"], monkeypatch)
    wire.commit(a_batch(client, text_message("m1")), timeout=5)
    assert client.collection("messages").document("m1").get().to_dict()["to"] == "+15550001111"
    assert client.collection("pending").document("m1").get().to_dict() == {"n": 1, "at": "x"}

    again = client.batch()  # a fresh document and one that exists: neither is written
    again.set(client.collection("pending").document("m2"), {"n": 2})
    add_create(again, client.collection("messages").document("m1"), {"to": "other"})
    with pytest.raises(gexc.AlreadyExists):
        wire.commit(again, timeout=5)
    assert not client.collection("pending").document("m2").get().exists
    assert client.collection("messages").document("m1").get().to_dict()["to"] == "+15550001111"


def test_an_unreachable_store_is_retried_within_the_timeout_then_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client = client_at(f"127.0.0.1:{free_port()}", monkeypatch)  # nothing listens there
    started = time.monotonic()
    with pytest.raises((gexc.RetryError, gexc.ServiceUnavailable)):
        wire.commit(a_batch(client, text_message("m1")), timeout=1.0)
    took = time.monotonic() - started
    assert 0.5 <= took < 5, took  # tried again for about the timeout, not once, not forever
