"""The number check (POST /v1/sessions/{id}/contacts:check): which phones are on WhatsApp, with
their JID and LID. Answers are cached per tenant for CONTACT_CACHE_TTL (`contacts/{tenant}:
{digits}`, one read per number), and only the numbers the cache does not hold are asked of
WhatsApp, each one counted against the session's check limit: WhatsApp bans accounts that look
numbers up in bulk (docs/messaging.md, "Groups and number checks")."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from wagate.contracts.directory import (
    CONTACT_CACHE_TTL,
    CheckNumbersResult,
    ContactDoc,
    NumberCheckView,
    RunnerQuery,
)
from wagate.errors import DependencyUnavailable, ValidationFailed
from wagate.ports import Clock, Store
from wagate.services.live_queries import LiveQueries

E164 = re.compile(r"^\+?([1-9][0-9]{6,15})$")


def digits_of(numbers: Sequence[str]) -> list[str]:
    """The numbers as digits, in order, each once; 400 naming the first one that is not E.164."""
    found: list[str] = []
    for i, raw in enumerate(numbers):
        match = E164.match(raw.strip().replace(" ", "").replace("-", ""))
        if match is None:
            raise ValidationFailed(
                f"numbers[{i}] is not a phone number in E.164 (+15551234567): {raw[:32]!r}",
                field=f"numbers.{i}",
            )
        if match.group(1) not in found:
            found.append(match.group(1))
    return found


class NumberChecks:
    def __init__(self, store: Store, clock: Clock, live: LiveQueries) -> None:
        self._cache = store.collection("contacts", ContactDoc)
        self._clock = clock
        self._live = live

    def check(
        self,
        tenant_id: str,
        session_id: str,
        numbers: Sequence[str],
        *,
        fresh: bool,
        admit: Callable[[int], None],
    ) -> CheckNumbersResult:
        """`admit(n)` counts the n numbers about to be asked of WhatsApp against the session's
        limit (and raises RateLimited when they would pass it)."""
        wanted = digits_of(numbers)
        now = self._clock.now()
        known: dict[str, ContactDoc] = {}
        if not fresh:
            ids = [f"{tenant_id}:{d}" for d in wanted]
            known = {d.number: d for d in self._cache.get_many(ids) if d.expire_at > now}
        missing = [d for d in wanted if d not in known]
        asked: dict[str, ContactDoc] = {}
        if missing:
            admit(len(missing))
            answers = self._live.ask(
                tenant_id,
                RunnerQuery(session_id=session_id, q="check_numbers", numbers=missing),
            )
            for digits, answer in zip(missing, answers, strict=False):
                asked[digits] = ContactDoc(
                    id=f"{tenant_id}:{digits}",
                    tenant_id=tenant_id,
                    number=digits,
                    on_whatsapp=bool(answer.get("on_whatsapp")),
                    jid=answer.get("jid"),
                    lid=answer.get("lid"),
                    checked_at=now,
                    expire_at=now + CONTACT_CACHE_TTL,
                )
            if len(asked) != len(missing):
                raise DependencyUnavailable(
                    "WhatsApp answered for fewer numbers than were asked", retry_after=5
                )
            self._cache.put_many(list(asked.values()))
        items = [
            self._view(known[d], cached=True) if d in known else self._view(asked[d], cached=False)
            for d in wanted
        ]
        return CheckNumbersResult(items=items, checked=len(missing))

    @staticmethod
    def _view(doc: ContactDoc, *, cached: bool) -> NumberCheckView:
        return NumberCheckView(
            number=f"+{doc.number}",
            on_whatsapp=doc.on_whatsapp,
            jid=doc.jid,
            lid=doc.lid,
            cached=cached,
            checked_at=doc.checked_at,
        )
