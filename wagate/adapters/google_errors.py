"""Google API exceptions → wagate errors: one `translated` for the adapters on google-cloud
client libraries, each with its own table of what a vendor exception means to it."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from wagate.errors import WagateError

# (vendor exception types, what it becomes given the operation's description and the exception)
Rule = tuple[
    type[BaseException] | tuple[type[BaseException], ...], Callable[[str, Any], WagateError]
]


@contextmanager
def translated(what: str, rules: Sequence[Rule]) -> Iterator[None]:
    """Raise the first matching rule's wagate error instead of a vendor exception (rules are
    tried in order, so a subclass goes before its base); WagateErrors and unmatched ones pass."""
    try:
        yield
    except WagateError:
        raise
    except Exception as e:
        for kinds, make in rules:
            if isinstance(e, kinds):
                raise make(what, e) from e
        raise
