"""Group commit for the api's accept writes: requests that create their documents at the same
time share one Firestore commit.

Each accepted message is one atomic `create_together` (message, pending entry, idempotency
record). Under load the api handles many at once, and a commit's fixed cost (the RPC, and the
store's work per commit) is most of what a small one costs, so concurrent requests hand their
writes to one shared commit instead: at most `in_flight` commits run at a time, and whatever
queued up meanwhile goes into the next. A request that arrives alone commits at once, so an
idle api adds no latency. Hand-written: it is a lock and a condition over the Store port, and
no library does group commit for Firestore.

A shared commit is all-or-nothing across its requests, so an `AlreadyExists` (a repeated
Idempotency-Key) would fail the others too: then each request of that group commits alone and
gets its own answer; two creations of one document never share a commit. Any other failure is
every request's failure, as it would have been alone (nothing was written, or the write may
have landed and the caller treats it so).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass

from wagate.contracts import Document
from wagate.errors import AlreadyExists
from wagate.ports import Store

MAX_DOCUMENTS = 500  # Firestore's limit for one commit


@dataclass
class _Creation:
    docs: Sequence[tuple[str, Document]]
    finished: bool = False
    error: BaseException | None = None


class SharedCommits:
    def __init__(self, store: Store, in_flight: int = 2) -> None:
        self._store = store
        self._in_flight = in_flight
        self._running = 0
        self._queue: list[_Creation] = []
        self._changed = threading.Condition()

    def create_together(self, docs: Sequence[tuple[str, Document]]) -> None:
        """Store.create_together, sharing the commit with concurrent callers."""
        mine = _Creation(docs)
        with self._changed:
            self._queue.append(mine)
            while not mine.finished:
                if self._running < self._in_flight and self._queue:
                    # Any waiting thread commits the next group, its own request or not.
                    group = self._take()
                    self._running += 1
                    self._changed.release()
                    try:
                        self._commit(group)
                    finally:
                        self._changed.acquire()
                        self._running -= 1
                        self._changed.notify_all()
                else:
                    self._changed.wait()
        if mine.error is not None:
            raise mine.error

    def _take(self) -> list[_Creation]:
        """The next group, in arrival order: a creation naming a document already in the group
        (the same Idempotency-Key twice) waits for a later one. Firestore refuses a commit that
        creates one document twice as a malformed request (INVALID_ARGUMENT), not as
        AlreadyExists, and that failed every request of the group with a 500."""
        group: list[_Creation] = []
        named: set[tuple[str, str]] = set()
        size = 0
        for creation in list(self._queue):
            if group and size + len(creation.docs) > MAX_DOCUMENTS:
                break
            paths = {(name, doc.id) for name, doc in creation.docs}
            if named & paths:
                continue
            named |= paths
            size += len(creation.docs)
            group.append(creation)
            self._queue.remove(creation)
        return group

    def _commit(self, group: list[_Creation]) -> None:
        try:
            self._store.create_together([doc for creation in group for doc in creation.docs])
        except AlreadyExists as e:
            if len(group) == 1:
                group[0].error = e
            else:
                for creation in group:
                    self._alone(creation)
        except BaseException as e:  # every request's failure, as it would have been alone
            for creation in group:
                creation.error = e
        for creation in group:
            creation.finished = True

    def _alone(self, creation: _Creation) -> None:
        try:
            self._store.create_together(creation.docs)
        except BaseException as e:
            creation.error = e
