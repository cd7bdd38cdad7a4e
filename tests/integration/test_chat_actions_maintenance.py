"""Maintenance and chat actions on the Firestore emulator: an old delivered message's edits lose
their texts with its body, and an edit action's own text goes too (what people wrote)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.integration.test_maintenance import env as env  # the fixture
from tests.integration.test_maintenance import message
from wagate.adapters.memory import FixedClock
from wagate.contracts import EditContent, EditRecord, MessageDoc, PresenceContent
from wagate.domain.messages import MessageStatus
from wagate.services.maintenance import PLACEHOLDER, Maintenance, Retention, pruned_content

pytestmark = pytest.mark.integration
DAY = timedelta(days=1)


def test_an_old_messages_edits_are_pruned_with_its_body(env: tuple[Any, Any]) -> None:
    store, bucket = env
    clock = FixedClock(datetime.now(UTC) + 40 * DAY)
    now = clock.now()
    edited = message(MessageStatus.READ, now - 31 * DAY, body="meet at 9")
    edited.edits = {"msg_edit": EditRecord(action_id="msg_edit", text="meet at 10", at=now)}
    action = message(MessageStatus.DELIVERED, now - 31 * DAY).model_copy(
        update={"content": EditContent(message_id=edited.id, body="meet at 10")}
    )
    messages = store.collection("messages", MessageDoc)
    messages.put_many([edited, action])
    Maintenance(store, bucket, clock, Retention()).run(dry_run=False)
    after = messages.get(edited.id)
    assert after is not None and after.edits["msg_edit"].text == PLACEHOLDER
    assert after.edits["msg_edit"].action_id == "msg_edit"  # the history's shape stays
    pruned_action = messages.get(action.id)
    assert pruned_action is not None
    assert pruned_action.content == EditContent(message_id=edited.id, body=PLACEHOLDER)


def test_actions_without_words_are_kept_as_they_are() -> None:
    presence = PresenceContent(state="typing")
    assert pruned_content(presence) == presence
