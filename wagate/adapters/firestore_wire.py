"""Firestore `create` and `update` writes encoded straight into protobuf.

Hand-written on purpose: the client library builds every value through proto-plus wrappers.
That cost about 350 µs of CPU per message document on this machine, against about 60 µs for
the same `Write` built from the raw protobuf classes (`python -m bench store`,
create_encode_us_per_doc). A message accept creates two documents on its critical path, so
this takes about 0.6 ms off each accept (docs/decisions.md, "Creates and updates are encoded
without proto-plus"). Updates (the runner's claim, its `sent` and receipt patches) took about
29 % of the runner's CPU in the library's update encoding during the pipeline bench;
`update_pb` keeps the library's own field-path handling (`extract_fields`, `set_field_value`,
`FieldPath`) and only replaces the proto-plus part.

Only plain data is encoded here: what `to_fields` produces (None, bool, int, float, str,
bytes, datetime, lists and maps of them). Anything else, such as a sentinel like
SERVER_TIMESTAMP that needs a field transform, is left to the library (`Unencodable`), as is
an update the library would refuse (no fields, conflicting paths, a nested DELETE_FIELD), so
that it raises its own error. The contract tests check the output equals the library's
`pbs_for_create` / `pbs_for_update` byte for byte.

`commit` sends a batch's writes the same way: a `CommitRequest` built from the raw protobuf
classes, on the client's own gRPC channel (its credentials, the emulator's metadata), with the
library's own error mapping (`grpc_helpers.wrap_errors`) and retry policy for commits. The
library's `WriteBatch.commit` wraps the request and its answer in proto-plus and passes them
through four layers of GAPIC wrappers: about 0.23 ms of CPU a commit here, a twentieth of an
accept (docs/benchmarks.md, "Runs after the fifteenth session's changes").
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Callable
from datetime import datetime
from typing import Any

from google.api_core import exceptions as gexc
from google.api_core import grpc_helpers
from google.api_core.datetime_helpers import DatetimeWithNanoseconds
from google.api_core.gapic_v1 import routing_header
from google.api_core.retry import Retry, if_exception_type
from google.cloud.firestore_v1 import _helpers, transforms
from google.cloud.firestore_v1._helpers import _datetime_to_pb_timestamp
from google.cloud.firestore_v1.field_path import FieldPath
from google.cloud.firestore_v1.services.firestore.transports.base import DEFAULT_CLIENT_INFO
from google.cloud.firestore_v1.types import common, document, write
from google.cloud.firestore_v1.types import firestore as firestore_types
from google.protobuf import struct_pb2

from wagate.adapters import billing

_Value = document.Value.pb()
_MapValue = document.MapValue.pb()
_ArrayValue = document.ArrayValue.pb()
_Document = document.Document.pb()
_Write = write.Write.pb()
_Precondition = common.Precondition.pb()
_DocumentMask = common.DocumentMask.pb()
_CommitRequest = firestore_types.CommitRequest.pb()
_CommitResponse = firestore_types.CommitResponse.pb()
# The library's default for Commit (its GAPIC transport): retried while the service is
# unavailable or out of quota, within the call's timeout.
COMMIT_RETRY = Retry(
    initial=0.1,
    maximum=60.0,
    multiplier=1.3,
    predicate=if_exception_type(gexc.ResourceExhausted, gexc.ServiceUnavailable),
)
_senders: weakref.WeakKeyDictionary[Any, Callable[..., Any]] = weakref.WeakKeyDictionary()


class Unencodable(TypeError):
    """A value this module leaves to the client library."""


def value_pb(value: Any) -> Any:
    """One Firestore `Value`, as the library's `encode_value` would build it."""
    if value is None:
        return _Value(null_value=struct_pb2.NULL_VALUE)
    kind = type(value)
    if kind is str:
        return _Value(string_value=value)
    if kind is bool:  # before int: bool is an int
        return _Value(boolean_value=value)
    if kind is int:
        return _Value(integer_value=value)
    if kind is float:
        return _Value(double_value=value)
    if kind is DatetimeWithNanoseconds:
        return _Value(timestamp_value=value.timestamp_pb())
    if kind is datetime:
        return _Value(timestamp_value=_datetime_to_pb_timestamp(value))
    if kind is bytes:
        return _Value(bytes_value=value)
    if kind is dict:
        return _Value(map_value=_MapValue(fields=fields_pb(value)))
    if kind is list or kind is tuple:
        return _Value(array_value=_ArrayValue(values=[value_pb(v) for v in value]))
    raise Unencodable(f"{kind.__name__} is left to the client library")


def fields_pb(fields: dict[str, Any]) -> dict[str, Any]:
    if "" in fields:  # the library refuses an empty field name with its own error
        raise Unencodable("an empty field name is left to the client library")
    return {key: value_pb(value) for key, value in fields.items()}


def create_pb(document_path: str, fields: dict[str, Any]) -> Any:
    """The `Write` that creates `document_path` with `fields`, failing if it exists."""
    return _Write(
        update=_Document(name=document_path, fields=fields_pb(fields)),
        current_document=_Precondition(exists=False),
    )


def update_pb(document_path: str, field_updates: dict[str, Any]) -> Any:
    """The `Write` that `update(field_updates)` sends: keys are field paths ("a.b", or quoted
    names), the mask names each of them, DELETE_FIELD removes a top-level one, and the document
    must exist. Built like the library's `pbs_for_update`, with raw protobuf values."""
    if not field_updates:
        raise Unencodable("an empty update is left to the client library")
    try:
        tops = sorted(FieldPath.from_string(key) for key in field_updates)
        leaves = list(_helpers.extract_fields(field_updates, FieldPath(), expand_dots=True))
    except ValueError as e:  # a malformed path: the library raises its own error
        raise Unencodable(str(e)) from e
    top_set = set(tops)
    if any(ancestor in top_set for path in tops for ancestor in path.lineage()):
        raise Unencodable("conflicting field paths are left to the client library")
    fields: dict[str, Any] = {}
    for path, value in leaves:
        if value is transforms.DELETE_FIELD:
            if path not in top_set:
                raise Unencodable("a nested DELETE_FIELD is left to the client library")
            continue  # named in the mask, absent from the document: the field is removed
        _helpers.set_field_value(fields, path, value)  # a sentinel fails in value_pb below
    return _Write(
        update=_Document(name=document_path, fields=fields_pb(fields)),
        update_mask=_DocumentMask(field_paths=[path.to_api_repr() for path in tops]),
        current_document=_Precondition(exists=True),
    )


def commit(batch: Any, *, timeout: float, retry: Retry = COMMIT_RETRY) -> None:
    """`batch.commit(retry=retry, timeout=timeout)` for a `WriteBatch`, sent as raw protobuf;
    the call raises the library's exceptions (`google.api_core.exceptions`), as it would."""
    # What the library's own methods (set, delete) add is proto-plus; ours is raw already.
    writes = [w if isinstance(w, _Write) else write.Write.pb(w) for w in batch._write_pbs]
    billing.count_writes(writes)
    request = _CommitRequest(database=batch._client._database_string, writes=writes)
    send = _senders.get(batch._client) or _sender(batch._client)
    deadline = time.monotonic() + timeout

    def attempt() -> Any:  # each try gets what is left of the call's time, as in GAPIC
        return send(request, timeout=max(deadline - time.monotonic(), 0.001))

    retry.with_timeout(timeout)(attempt)()


def _sender(client: Any) -> Callable[..., Any]:
    """The client's Commit stub, with the metadata its GAPIC layer adds (resource prefix and
    routing header, the emulator's authorization, the x-goog-api-client header)."""
    channel = client._firestore_api._transport.grpc_channel
    stub = channel.unary_unary(
        "/google.firestore.v1.Firestore/Commit",
        request_serializer=_CommitRequest.SerializeToString,
        response_deserializer=_CommitResponse.FromString,
    )
    metadata = (
        *client._rpc_metadata,
        routing_header.to_grpc_metadata((("database", client._database_string),)),
        DEFAULT_CLIENT_INFO.to_grpc_metadata(),
    )
    remapped = grpc_helpers.wrap_errors(stub)

    def send(request: Any, *, timeout: float) -> Any:
        return remapped(request, metadata=metadata, timeout=timeout)

    _senders[client] = send
    return send
