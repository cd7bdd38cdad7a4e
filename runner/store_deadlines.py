"""How long the send path waits for a store call before it carries on without the store."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from runner.journal import StoreTimedOut

T = TypeVar("T")

# Store calls on the send path give up after this and the send carries on without the store
# (the adapter's own deadline for reads is 10 s; a claim is a transaction, and a slow but
# working store must not be taken for a dead one).
STORE_READ_TIMEOUT_S = 10.0
STORE_CLAIM_TIMEOUT_S = 15.0


async def within(seconds: float, call: Awaitable[T]) -> T:
    """A store call that does not answer in time is an outage (DependencyUnavailable). Only
    for calls whose late completion is harmless — reads, and the claim (a claim that lands
    after its send went ahead finds the message `sent`, or leaves it `sending` for the
    replayed outcome); writes go through runner/journal/, which tracks late ones."""
    try:
        return await asyncio.wait_for(call, seconds)
    except TimeoutError:
        raise StoreTimedOut(
            f"the store did not answer within {seconds:.0f}s", retry_after=5
        ) from None
