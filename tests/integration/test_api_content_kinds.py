"""The send endpoint takes issue 22's content kinds (polls, voice notes, stickers, mentions,
link previews) on the real emulators: accepted as written, refused with the field at fault and
nothing stored."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.api_client import Api
from tests.integration.test_api import api, new_session
from wagate.contracts import MessageDoc

pytestmark = pytest.mark.integration
__all__ = ["api"]  # the fixture, shared with test_api.py

ACCEPTED = [
    {"type": "poll", "question": "Slot?", "options": ["9", "12", "18"], "selectable_count": 2},
    {"type": "voice", "url": "https://example.com/note.ogg", "mime_type": "audio/ogg"},
    {"type": "sticker", "url": "https://example.com/s.webp"},
    {"type": "text", "body": "@15550001111 look", "mentions": ["+15550001111"]},
    {"type": "text", "body": "see https://example.com", "link_preview": True},
]


@pytest.mark.parametrize("content", ACCEPTED, ids=lambda c: str(c["type"]))
def test_each_new_kind_is_accepted_and_stored_as_written(api: Api, content: dict[str, Any]) -> None:
    key = api.tenant()["api_key"]
    session = new_session(api, key)
    path = f"/v1/sessions/{session['id']}/messages"
    response = api.call("POST", path, key, json={"to": "+15551234567", "content": content})
    assert response.status_code == 202, response.get_json()
    stored = api.call("GET", f"/v1/messages/{response.get_json()['id']}", key).get_json()
    assert {k: stored["content"][k] for k in content} == content


@pytest.mark.parametrize(
    ("content", "code", "field"),
    [
        (
            {"type": "poll", "question": "q", "options": ["a", "a"]},
            "validation_failed",
            "content.poll.options",
        ),
        (
            {"type": "sticker", "url": "https://example.com/s.png", "mime_type": "image/png"},
            "validation_failed",
            "content.sticker.mime_type",
        ),
        (
            {"type": "text", "body": "no at sign", "mentions": ["+15550001111"]},
            "validation_failed",
            "content.text.mentions",
        ),
        # The metadata server, refused by the egress guard before anything is stored.
        ({"type": "voice", "url": "http://169.254.169.254/x.ogg"}, "egress_refused", "content.url"),
    ],
)
def test_a_bad_new_kind_is_a_field_error_and_nothing_is_written(
    api: Api, content: dict[str, Any], code: str, field: str
) -> None:
    key = api.tenant()["api_key"]
    session = new_session(api, key)
    path = f"/v1/sessions/{session['id']}/messages"
    response = api.call("POST", path, key, json={"to": "+15551234567", "content": content})
    assert response.status_code == 400, response.get_json()
    error = response.get_json()["error"]
    assert error["code"] == code and error["message"], error
    assert error["details"][0]["field"] == field, error
    from functions.app import gateway

    assert gateway().store.collection("messages", MessageDoc).query() == []


@pytest.mark.parametrize(
    ("kind", "uploaded_as", "status"),
    [
        ("voice", "audio/ogg", 202),
        ("voice", "audio/mpeg", 400),
        ("sticker", "image/webp", 202),
        ("sticker", "image/png", 400),
        ("image", "image/png", 202),
    ],
)
def test_an_uploaded_voice_note_or_sticker_must_be_of_its_format(
    api: Api, gcs_env: Any, kind: str, uploaded_as: str, status: int
) -> None:
    key = api.tenant()["api_key"]
    session = new_session(api, key)
    upload = api.call("POST", "/v1/media", key, data=b"file", headers={"Content-Type": uploaded_as})
    assert upload.status_code == 201, upload.get_json()
    media_id = upload.get_json()["id"]
    content = {"type": kind, "media_id": media_id}
    path = f"/v1/sessions/{session['id']}/messages"
    response = api.call("POST", path, key, json={"to": "+15551234567", "content": content})
    assert response.status_code == status, response.get_json()
    if status == 400:
        error = response.get_json()["error"]
        assert error["code"] == "validation_failed" and uploaded_as in error["message"]
        assert error["details"][0]["field"] == "content.media_id"
