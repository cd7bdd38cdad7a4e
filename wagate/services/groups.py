"""A session's WhatsApp groups: list them, one group's members, create one, add, remove, promote
or demote members, and its invite link — each asked synchronously of the session's live socket
(wagate/services/live_queries.py). Sending to a group is an ordinary send (`to` = …@g.us).

A create with an `Idempotency-Key` is done once: `group_creates/{hash}` holds the answer (24 h);
a repeat gets it again, a concurrent one 409. When the first create's answer was lost (the
runner did not answer in time) the group may exist: a repeat then looks for a group with that
subject made since, before creating another (docs/messaging.md, "Groups and number checks").
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime, timedelta
from typing import Literal

from wagate.contracts.base import Document
from wagate.contracts.directory import (
    ChangeParticipantsRequest,
    CreateGroupRequest,
    GroupList,
    GroupView,
    InviteView,
    ParticipantResultView,
    ParticipantsResult,
    RunnerQuery,
)
from wagate.domain.directory import group_jid
from wagate.errors import AlreadyExists, Conflict, DependencyUnavailable, ValidationFailed
from wagate.ports import Clock, Store
from wagate.services.live_queries import LiveQueries

GROUP_ID = re.compile(r"^[0-9]{6,20}(-[0-9]{6,12})?$")
PHONE = re.compile(r"^\+?([1-9][0-9]{6,15})$")
KEEP_CREATES = timedelta(hours=24)
PENDING_FOR_AT_MOST = timedelta(seconds=60)  # a create's answer comes within the request timeout
INVITE_URL = "https://chat.whatsapp.com/"


class GroupCreateDoc(Document):
    """`group_creates/{sha256(tenant, session, key)}`: one create with an Idempotency-Key."""

    tenant_id: str
    session_id: str
    fingerprint: str  # the request body's hash: the same key with another body is a 409
    state: Literal["pending", "unknown", "done"]
    started_at: datetime
    group: GroupView | None = None
    expire_at: datetime


def person_jid(raw: str, field: str) -> str:
    """A member as WhatsApp names them: E.164 becomes its JID; JIDs and LIDs stay."""
    value = raw.strip()
    match = PHONE.match(value)
    if match:
        return f"{match.group(1)}@s.whatsapp.net"
    if value.endswith(("@s.whatsapp.net", "@lid")):
        return value
    raise ValidationFailed(f"{field} is not a phone number, phone JID or LID", field=field)


def group_of(group_id: str) -> str:
    if not GROUP_ID.match(group_id):
        raise ValidationFailed("not a group id (the part of its JID before @g.us)", field="group")
    return group_jid(group_id)


class Groups:
    def __init__(self, store: Store, clock: Clock, live: LiveQueries) -> None:
        self._creates = store.collection("group_creates", GroupCreateDoc)
        self._clock = clock
        self._live = live

    def list(self, tenant_id: str, session_id: str) -> GroupList:
        data = self._live.ask(tenant_id, RunnerQuery(session_id=session_id, q="groups"))
        return GroupList(items=[GroupView.model_validate(g) for g in data])

    def get(self, tenant_id: str, session_id: str, group_id: str) -> GroupView:
        query = RunnerQuery(session_id=session_id, q="group", group=group_of(group_id))
        return GroupView.model_validate(self._live.ask(tenant_id, query))

    def invite(self, tenant_id: str, session_id: str, group_id: str) -> InviteView:
        query = RunnerQuery(session_id=session_id, q="invite_code", group=group_of(group_id))
        code = str(self._live.ask(tenant_id, query))
        return InviteView(code=code, url=INVITE_URL + code)

    def change(
        self, tenant_id: str, session_id: str, group_id: str, body: ChangeParticipantsRequest
    ) -> ParticipantsResult:
        people = [person_jid(p, f"participants.{i}") for i, p in enumerate(body.participants)]
        query = RunnerQuery(
            session_id=session_id,
            q="update_participants",
            group=group_of(group_id),
            action=body.action,
            participants=people,
        )
        data = self._live.ask(tenant_id, query)
        return ParticipantsResult(
            action=body.action, results=[ParticipantResultView.model_validate(r) for r in data]
        )

    # ------------------------------------------------------------ create

    def create(
        self,
        tenant_id: str,
        session_id: str,
        body: CreateGroupRequest,
        *,
        idempotency_key: str | None,
        fingerprint: str,
    ) -> GroupView:
        people = [person_jid(p, f"participants.{i}") for i, p in enumerate(body.participants)]
        query = RunnerQuery(
            session_id=session_id, q="create_group", subject=body.subject, participants=people
        )
        if idempotency_key is None:
            return GroupView.model_validate(self._live.ask(tenant_id, query))
        now = self._clock.now()
        marker = GroupCreateDoc(
            id=self._create_id(tenant_id, session_id, idempotency_key),
            tenant_id=tenant_id,
            session_id=session_id,
            fingerprint=fingerprint,
            state="pending",
            started_at=now,
            expire_at=now + KEEP_CREATES,
        )
        try:
            self._creates.create(marker)
        except AlreadyExists:
            found = self._repeat(tenant_id, marker, body.subject)
            if found is not None:
                return found
        try:
            group = GroupView.model_validate(self._live.ask(tenant_id, query))
        except DependencyUnavailable as e:
            # Lost answer or no answer at all: a repeat looks for the group before creating.
            self._creates.put(marker.model_copy(update={"state": "unknown"}))
            raise e from None
        except Exception:
            self._creates.delete(marker.id)  # refused: nothing was created
            raise
        self._creates.put(marker.model_copy(update={"state": "done", "group": group}))
        return group

    def created(
        self, tenant_id: str, session_id: str, idempotency_key: str, fingerprint: str
    ) -> GroupView | None:
        """The group an earlier create with this Idempotency-Key made, if it is known to have
        made one; Conflict if that create had another body. The api asks at its rate limit, so
        that a retry of a create that went through is answered, not refused."""
        first = self._creates.get(self._create_id(tenant_id, session_id, idempotency_key))
        if first is None:
            return None
        _same_body(first, fingerprint)
        return first.group if first.state == "done" else None

    @staticmethod
    def _create_id(tenant_id: str, session_id: str, idempotency_key: str) -> str:
        return hashlib.sha256(
            f"{tenant_id}\x00{session_id}\x00{idempotency_key}".encode()
        ).hexdigest()

    def _repeat(self, tenant_id: str, marker: GroupCreateDoc, subject: str) -> GroupView | None:
        """A create with a key already used: its answer, or None to create (again) now."""
        first = self._creates.get(marker.id)
        if first is None:
            self._creates.create(marker)
            return None
        _same_body(first, marker.fingerprint)
        if first.state == "done" and first.group is not None:
            return first.group
        stale = self._clock.now() - first.started_at > PENDING_FOR_AT_MOST
        if first.state == "pending" and not stale:
            raise Conflict(
                "a create with this Idempotency-Key is under way; retry in a few seconds",
                field="Idempotency-Key",
            )
        # unknown (or pending past any answer: its api instance died): it may have made it.
        since = first.started_at - timedelta(minutes=1)
        for group in self.list(tenant_id, marker.session_id).items:
            if group.subject == subject and group.created_at and group.created_at >= since:
                self._creates.put(first.model_copy(update={"state": "done", "group": group}))
                return self.get(tenant_id, marker.session_id, group.id)
        self._creates.put(marker)
        return None


def _same_body(first: GroupCreateDoc, fingerprint: str) -> None:
    """Conflict if the create that first used this Idempotency-Key had another body."""
    if first.fingerprint != fingerprint:
        raise Conflict("this Idempotency-Key was used with another body", field="Idempotency-Key")
