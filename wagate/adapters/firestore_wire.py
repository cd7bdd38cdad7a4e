"""Firestore `create` writes encoded straight into protobuf, for the api's accept path.

Hand-written on purpose: the client library builds every value through proto-plus wrappers.
That cost about 350 µs of CPU per message document on this machine, against about 60 µs for
the same `Write` built from the raw protobuf classes (`python -m bench store`,
create_encode_us_per_doc). A message accept creates two documents on its critical path, so
this takes about 0.6 ms off each accept (docs/decisions.md, "Creates are encoded without
proto-plus").

Only plain data is encoded here: what `to_fields` produces (None, bool, int, float, str,
bytes, datetime, lists and maps of them). Anything else, such as a sentinel like
SERVER_TIMESTAMP that needs a field transform, is left to the library (`Unencodable`). The
contract test checks the output equals the library's `pbs_for_create` byte for byte.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from google.api_core.datetime_helpers import DatetimeWithNanoseconds
from google.cloud.firestore_v1._helpers import _datetime_to_pb_timestamp
from google.cloud.firestore_v1.types import common, document, write
from google.protobuf import struct_pb2

_Value = document.Value.pb()
_MapValue = document.MapValue.pb()
_ArrayValue = document.ArrayValue.pb()
_Document = document.Document.pb()
_Write = write.Write.pb()
_Precondition = common.Precondition.pb()


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
