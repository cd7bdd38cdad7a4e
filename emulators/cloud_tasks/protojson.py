"""proto3 JSON scalars as the Cloud Tasks REST transport writes them.

Durations as ``"1.5s"``, Timestamps as RFC 3339, int32 as a number or a decimal string and
enums by number or by name. Hand-written (rather than the generated protobuf classes) so the
emulator depends on nothing but aiohttp and stays fast on the create path.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import TypeVar

from emulators.cloud_tasks.errors import invalid

E = TypeVar("E", bound=enum.IntEnum)
N = TypeVar("N", int, float)

_TIMESTAMP = re.compile(
    r"(\d{4}-\d{2}-\d{2})[Tt](\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?([Zz]|[+-]\d{2}:\d{2})"
)


def parse_duration(value: object, field: str) -> float:
    if isinstance(value, str) and value.endswith("s"):
        try:
            return float(value[:-1])
        except ValueError:
            pass
    raise invalid(f'Invalid value for {field}: "{value}" is not a duration like "1.5s".')


def format_duration(seconds: float) -> str:
    nanos_total = round(seconds * 1e9)
    sign = "-" if nanos_total < 0 else ""
    whole, nanos = divmod(abs(nanos_total), 10**9)
    if nanos == 0:
        return f"{sign}{whole}s"
    if nanos % 10**6 == 0:
        return f"{sign}{whole}.{nanos // 10**6:03d}s"
    if nanos % 10**3 == 0:
        return f"{sign}{whole}.{nanos // 10**3:06d}s"
    return f"{sign}{whole}.{nanos:09d}s"


def parse_timestamp(value: object, field: str) -> float:
    match = _TIMESTAMP.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise invalid(f'Invalid value for {field}: "{value}" is not an RFC 3339 timestamp.')
    offset = "+00:00" if match[4] in ("Z", "z") else match[4]
    try:
        whole = datetime.fromisoformat(f"{match[1]}T{match[2]}{offset}").timestamp()
    except ValueError as e:
        raise invalid(f'Invalid value for {field}: "{value}".') from e
    fraction = int(match[3].ljust(9, "0")) / 1e9 if match[3] else 0.0
    return whole + fraction


def format_timestamp(epoch_s: float) -> str:
    moment = datetime.fromtimestamp(epoch_s, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_int(value: object, field: str) -> int:
    # proto3 JSON allows int32 as a number or a decimal string.
    if isinstance(value, bool):
        raise invalid(f"Invalid value for {field}: {value!r}.")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    parsed = _from_text(value, int)
    if parsed is None:
        raise invalid(f"Invalid value for {field}: {value!r} is not an integer.")
    return parsed


def parse_float(value: object, field: str) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    parsed = _from_text(value, float)
    if parsed is None:
        raise invalid(f"Invalid value for {field}: {value!r} is not a number.")
    return parsed


def _from_text(value: object, convert: Callable[[str], N]) -> N | None:
    """A number given as a decimal string (proto3 JSON allows it); None when it is not one."""
    if not isinstance(value, str):
        return None
    try:
        return convert(value)
    except ValueError:
        return None


def parse_enum(value: object, kind: type[E], field: str) -> E | None:
    """An enum given by number or by name; None for the unspecified value (0)."""
    try:
        if isinstance(value, int) and not isinstance(value, bool):
            return None if value == 0 else kind(value)
        if isinstance(value, str) and value.isdigit():  # query parameters are text
            return None if value == "0" else kind(int(value))
        if isinstance(value, str):
            return None if value.endswith("UNSPECIFIED") else kind[value]
    except (ValueError, KeyError):
        pass
    raise invalid(f"Invalid value for {field}: {value!r}.")


def enum_json(member: enum.IntEnum, ints: bool) -> object:
    return int(member) if ints else member.name


def as_object(value: object, field: str) -> Mapping[str, object]:
    if value is None:
        return {}
    if isinstance(value, Mapping):
        return value
    raise invalid(f"Invalid value for {field}: expected an object.")


def as_string(value: object, field: str) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    raise invalid(f"Invalid value for {field}: expected a string.")
