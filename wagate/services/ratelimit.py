"""Per-tenant, per-route request limits that hold across every api instance: quota leasing.

Fixed windows aligned to the wall clock (a minute for sends and session creates, five minutes
for QR fetches). A window's quota is split over a few shard documents,
`rate_limits/{tenant}:{route}:{window_start}:{k}`, so no document takes every write. An
instance does not ask Firestore per request: it reserves a *block* of tokens from one shard in
a transaction and serves requests from that block locally. Reservations never exceed a shard's
quota, and the quotas add up to the limit, so all instances together never admit more than
the limit, however many there are.

The block adapts: it covers about BLOCK_HORIZON_S of this instance's own recent demand, and
never more than 1/BLOCK_DIVISOR of what the shard has left, so near the limit blocks shrink
to one token and the last tokens go where the requests are. Once a shard says it is empty the
instance stops asking it; once every shard is empty it answers 429 without a round trip until
the window ends.

The trade-off (docs/security.md): tokens an instance reserved but did not use expire with the
window, so when traffic moves between instances mid-window a tenant may be admitted somewhat
*fewer* requests than its limit, never more. A limit change applies to shards created after it
(at the latest the next window); lowering it also caps existing shards at once.

Hand-written because no library does distributed rate limiting on Firestore; the arithmetic
is a few lines, tested with the memory store and on the emulator.
"""

from __future__ import annotations

import math
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from wagate.contracts import Document, TenantLimits
from wagate.ports import Clock, Store

MAX_SHARDS = 16
TOKENS_PER_SHARD = 50  # a limit of 60 is one document; 100,000/min spreads over 16
BLOCK_DIVISOR = 4  # a reservation takes at most a quarter of what a shard has left
BLOCK_HORIZON_S = 10.0  # ... and about this many seconds of this instance's demand
KEEP_WINDOW_DOCS = timedelta(hours=1)  # Firestore's TTL deletes them after this


@dataclass(frozen=True)
class Rule:
    """One limited route: its window, and which tenant limit sets its size."""

    route: str
    window_s: int
    limit_of: Callable[[TenantLimits], int]


SENDS = Rule("sends", 60, lambda limits: limits.sends_per_minute)
SESSION_CREATES = Rule("session_creates", 60, lambda limits: limits.session_creates_per_minute)
QR_FETCHES = Rule("qr_fetches", 300, lambda limits: limits.qr_fetches_per_5_minutes)
# Per session, one token per number asked of WhatsApp (wagate/services/contacts.py).
CONTACT_CHECKS = Rule("contact_checks", 3600, lambda limits: limits.contact_checks_per_hour)
# Per session: group creates and member changes (functions/groups.py).
GROUP_CHANGES = Rule("group_changes", 3600, lambda limits: limits.group_changes_per_hour)


class RateLimitShard(Document):
    """`rate_limits/{tenant}:{route}:{window_start}:{k}`: tokens reserved from one shard."""

    tenant_id: str
    route: str
    window_start: datetime
    quota: int  # this shard's share of the limit when the document was created
    reserved: int = 0
    expire_at: datetime  # Firestore TTL (infra/terraform firestore.tf)


@dataclass(frozen=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int  # an estimate: this instance's tokens + what it last saw unreserved
    reset_s: float  # seconds until the window ends (and the quota is whole again)


def shard_quotas(limit: int) -> list[int]:
    """The limit split over shards: every shard gets its share, the first ones the remainder."""
    count = max(1, min(MAX_SHARDS, limit // TOKENS_PER_SHARD))
    base, extra = divmod(limit, count)
    return [base + (1 if k < extra else 0) for k in range(count)]


class _ShardEmpty(Exception):
    """Raised inside the reservation transaction so an empty shard costs no write."""


@dataclass
class _Local:
    """This instance's view of one (tenant, route) window."""

    window_start: float = -1.0
    tokens: int = 0
    served: int = 0
    first_at: float = 0.0
    prior_rate: float = 0.0  # requests/s served in the previous window
    empty: set[int] = field(default_factory=set)
    unreserved: dict[int, int] = field(default_factory=dict)  # shard → left when last seen
    lock: threading.Lock = field(default_factory=threading.Lock)


class RateLimiter:
    def __init__(self, store: Store, clock: Clock, rng: random.Random | None = None) -> None:
        self._shards = store.collection("rate_limits", RateLimitShard)
        self._clock = clock
        self._rng = rng or random.Random()  # spreads load over shards; not a secret
        self._local: dict[tuple[str, str], _Local] = {}
        self._lock = threading.Lock()

    def take(self, tenant_id: str, rule: Rule, limits: TenantLimits) -> Decision:
        """Admit one request of `rule` for the tenant, or refuse it (allowed=False)."""
        limit = rule.limit_of(limits)
        now = self._clock.now().timestamp()
        window_start = math.floor(now / rule.window_s) * rule.window_s
        reset_s = window_start + rule.window_s - now
        state = self._state(tenant_id, rule.route)
        with state.lock:
            if state.window_start != window_start:
                self._roll(state, window_start, rule.window_s)
            if state.tokens == 0:
                self._reserve(state, tenant_id, rule, limit, window_start)
            if state.tokens == 0:
                return Decision(False, limit, 0, reset_s)
            state.tokens -= 1
            state.served += 1
            remaining = state.tokens + self._unreserved(state, limit)
            return Decision(True, limit, min(limit - 1, remaining), reset_s)

    # ------------------------------------------------------------ internals

    def _state(self, tenant_id: str, route: str) -> _Local:
        with self._lock:
            state = self._local.get((tenant_id, route))
            if state is None:
                if len(self._local) > 10_000:  # forget tenants idle since an earlier window
                    self._local = {k: v for k, v in self._local.items() if v.tokens > 0}
                state = self._local[(tenant_id, route)] = _Local()
            return state

    def _roll(self, state: _Local, window_start: float, window_s: int) -> None:
        now = self._clock.monotonic()
        follows = state.window_start == window_start - window_s
        state.prior_rate = state.served / max(1.0, now - state.first_at) if follows else 0.0
        state.window_start = window_start
        state.tokens = 0  # left-over reserved tokens expire with their window
        state.served = 0
        state.first_at = now
        state.empty = set()
        state.unreserved = {}

    def _unreserved(self, state: _Local, limit: int) -> int:
        quotas = shard_quotas(limit)
        return sum(state.unreserved.get(k, q) for k, q in enumerate(quotas) if k not in state.empty)

    def _block(self, state: _Local, shard_left: int) -> int:
        elapsed = max(1.0, self._clock.monotonic() - state.first_at)
        rate = max(state.served / elapsed, state.prior_rate)
        demand = math.ceil(rate * BLOCK_HORIZON_S) + 1
        return max(1, min(demand, math.ceil(shard_left / BLOCK_DIVISOR)))

    def _reserve(
        self, state: _Local, tenant_id: str, rule: Rule, limit: int, window_start: float
    ) -> None:
        """Fill state.tokens from a random shard that still has some; leave it at 0 when every
        shard of the window is empty."""
        quotas = shard_quotas(limit)
        started = datetime.fromtimestamp(window_start, UTC)
        while True:
            candidates = [k for k in range(len(quotas)) if k not in state.empty]
            if not candidates:
                return
            k = self._rng.choice(candidates)
            granted: list[int] = [0]

            def reserve(
                doc: RateLimitShard | None, k: int = k, granted: list[int] = granted
            ) -> RateLimitShard:
                if doc is None:
                    doc = RateLimitShard(
                        id="",
                        tenant_id=tenant_id,
                        route=rule.route,
                        window_start=started,
                        quota=quotas[k],
                        expire_at=started + timedelta(seconds=rule.window_s) + KEEP_WINDOW_DOCS,
                    )
                left = min(doc.quota, quotas[k]) - doc.reserved
                if left <= 0:
                    raise _ShardEmpty
                granted[0] = min(left, self._block(state, left))
                state.unreserved[k] = left - granted[0]
                return doc.model_copy(update={"reserved": doc.reserved + granted[0]})

            doc_id = f"{tenant_id}:{rule.route}:{int(window_start)}:{k}"
            try:
                self._shards.upsert(doc_id, reserve)
            except _ShardEmpty:
                state.empty.add(k)
                state.unreserved[k] = 0
                continue
            state.tokens += granted[0]
            if state.unreserved.get(k) == 0:
                state.empty.add(k)
            return
