"""whatsmeow and issue 22's content kinds, on the library's own protobuf objects: mentions, the
runner's link preview, voice notes (PTT), stickers and polls going out; polls and votes coming
in (votes as whatsmeow's DecryptPollVote hands them over)."""

from __future__ import annotations

import base64
import hashlib

from neonize.events import MessageEv
from neonize.proto.Neonize_pb2 import JID, UploadResponse
from neonize.proto.waE2E.WAWebProtobufsE2E_pb2 import Message
from neonize.utils.enum import MediaType

from runner.engines.whatsmeow import inbound, outbound

TO = JID(User="15550500002", Server="s.whatsapp.net", Device=0, RawAgent=0, Integrator=0)


def upload(data: bytes, media_type: MediaType) -> UploadResponse:
    uploads.append(media_type)
    return UploadResponse(url="https://mmg.example/x", DirectPath="/v/x", FileLength=len(data))


uploads: list[MediaType] = []


def test_mentions_go_out_as_mentioned_jids_on_an_extended_text() -> None:
    content = {"body": "@15550001111 hi", "mentions": ["+15550001111", "100000000000007@lid"]}
    message = outbound.build_message("text", content, to=TO)
    ext = message.extendedTextMessage
    assert ext.text == "@15550001111 hi"
    assert list(ext.contextInfo.mentionedJID) == [
        "15550001111@s.whatsapp.net",
        "100000000000007@lid",
    ]


def test_the_runners_link_preview_goes_out_with_its_thumbnail() -> None:
    thumb = b"\xff\xd8\xff" + bytes(10)
    preview = {
        "url": "https://shop.example/sale",
        "title": "Sale",
        "description": "20% off",
        "thumbnail_b64": base64.b64encode(thumb).decode(),
    }
    body = "see https://shop.example/sale"
    ext = outbound.build_message(
        "text", {"body": body, "link_preview": True, "preview": preview}, to=TO
    ).extendedTextMessage
    assert (ext.text, ext.matchedText, ext.title) == (body, preview["url"], "Sale")
    assert (ext.description, ext.JPEGThumbnail) == ("20% off", thumb)
    plain = outbound.build_message("text", {"body": body, "link_preview": True}, to=TO)
    assert plain.conversation == body  # no preview made: a plain text


def test_a_voice_note_is_ptt_audio_and_a_sticker_a_webp_sticker() -> None:
    voice = outbound.build_message("voice", {}, to=TO, media=b"OggS..", upload=upload)
    assert voice.audioMessage.PTT and voice.audioMessage.mimetype == "audio/ogg; codecs=opus"
    audio = outbound.build_message("audio", {}, to=TO, media=b"OggS..", upload=upload)
    assert not audio.audioMessage.PTT
    sticker = outbound.build_message("sticker", {}, to=TO, media=b"RIFF", upload=upload)
    assert sticker.stickerMessage.mimetype == "image/webp"
    assert sticker.stickerMessage.directPath == "/v/x"
    assert uploads[-3:] == [MediaType.MediaAudio, MediaType.MediaAudio, MediaType.MediaImage]


def test_a_poll_carries_its_options_and_a_fresh_secret() -> None:
    single = outbound.build_message(
        "poll", {"question": "Lunch?", "options": ["Tea", "Soup"], "selectable_count": 1}, to=TO
    )
    poll = single.pollCreationMessageV3
    assert (poll.name, [o.optionName for o in poll.options]) == ("Lunch?", ["Tea", "Soup"])
    assert poll.selectableOptionsCount == 1
    multi = outbound.build_message(
        "poll", {"question": "Q", "options": ["a", "b", "c"], "selectable_count": 2}, to=TO
    )
    assert multi.pollCreationMessage.selectableOptionsCount == 2
    secrets = {single.messageContextInfo.messageSecret, multi.messageContextInfo.messageSecret}
    assert len(secrets) == 2 and all(len(s) == 32 for s in secrets)


def vote_event(selected_poll: str = "3EB0POLL") -> MessageEv:
    message = Message()
    message.pollUpdateMessage.pollCreationMessageKey.ID = selected_poll
    event = MessageEv(Message=message)
    event.Info.ID = "3EB0VOTE"
    event.Info.Timestamp = 1_767_225_600_000
    event.Info.MessageSource.Chat.CopyFrom(TO)
    event.Info.MessageSource.Sender.CopyFrom(TO)
    return event


def test_a_decrypted_vote_becomes_a_poll_vote_with_the_options_hashes() -> None:
    tea = hashlib.sha256(b"Tea").digest()
    vote = inbound.poll_vote(vote_event(), [tea])
    assert (vote.wa_id, vote.kind, vote.sender) == (
        "3EB0VOTE",
        "poll_vote",
        "15550500002@s.whatsapp.net",
    )
    assert vote.content == {"poll_id": "3EB0POLL", "selected_hashes": [tea.hex()]}
    unread = inbound.poll_vote(vote_event(), None, "no secret")
    assert unread.content == {"poll_id": "3EB0POLL", "selected_hashes": None, "error": "no secret"}


def test_a_contacts_poll_arrives_as_a_poll() -> None:
    message = Message()
    message.pollCreationMessageV3.name = "Team lunch?"
    for name in ("Mon", "Tue"):
        message.pollCreationMessageV3.options.add(optionName=name)
    message.pollCreationMessageV3.selectableOptionsCount = 1
    assert inbound.message_content(message) == (
        "poll",
        {"question": "Team lunch?", "options": ["Mon", "Tue"], "selectable_count": 1},
    )
