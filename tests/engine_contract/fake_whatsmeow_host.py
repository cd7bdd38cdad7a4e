"""A stand-in for runner.engines.whatsmeow.host that speaks the same pipe protocol but scripts
WhatsApp's side, so the adapter's own logic (sent-id ledger, receipt translation, late acks,
store capture, one close per host, timeouts, crashes) is tested without WhatsApp. The real
host and the library are tested separately (mapping with the library's event objects, the real
host offline). Behaviour is chosen by the session id:

- `hang…`: never answers (a connect that hangs)
- `crash…`: prints to stderr and exits with code 3
- anything else: connects at once as ME, commits a change to the store, and serves requests:
  send → ok with a WhatsApp id "WA<n>" (body "slow": after 1 s; to NOT_ON_WHATSAPP: permanent
  error; body "rate": whatsmeow's 429 error; body "drop:<code>": closes with that reason), then
  a delivered receipt for the WhatsApp id; act (a chat action) → ok, with a WhatsApp id for an
  edit or revoke, appended to `<store>.acts`; logout → closes with 401. A poll is voted on at
  once (the first option), as the real host reports a decrypted vote, naming whatsmeow's id.
- `media…`: as anything else, and after connecting a contact sends MEDIA_MESSAGES, each with the
  `media` reference the real host attaches; download of a reference → its file (the fake's
  `message_b64` is the file itself), or the error of a `gone` one.
Every send that reaches it is appended to `<store>.sends`; the names of its environment variables
are written to `<store>.env`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sqlite3
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from runner.engines.whatsmeow import wire
from wagate.domain.events import (
    Connected,
    Disconnected,
    EngineEvent,
    GroupParticipantsChanged,
    InboundMessage,
    Receipt,
)

ME = "15550500001@s.whatsapp.net"
NOT_ON_WHATSAPP = "+99955501234"
FAKE_GROUP = "120363100000000001@g.us"
# (wa id, kind, file, mime type, gone) of the media a contact sends to a `media…` session.
MEDIA_MESSAGES = (
    ("3EB0WMIMAGE", "image", b"\xff\xd8\xff" + bytes(range(256)) * 30, "image/jpeg", False),
    ("3EB0WMVOICE", "voice", b"OggS" + bytes(range(200)), "audio/ogg; codecs=opus", False),
    ("3EB0WMGONE", "document", b"%PDF gone", "application/pdf", True),
)


def directory_answer(frame: wire.Frame, groups: dict[str, dict[str, str]]) -> dict[str, Any]:
    """A query's reply as the real host gives it (host_directory.run_query's shape)."""
    q = frame.get("q")
    if q == "check_numbers":
        return {
            "data": [
                {"number": n, "on_whatsapp": not n.startswith("999"), "jid": f"{n}@s.whatsapp.net"}
                for n in frame["numbers"]
            ]
        }
    if q == "create_group":
        groups[FAKE_GROUP] = {ME: "superadmin", **{p: "member" for p in frame["participants"]}}
    members = groups.get(str(frame.get("group") or FAKE_GROUP))
    if members is None:
        return {
            "refused": {"code": "not_found", "message": "info query returned 404: item-not-found"}
        }
    info = {
        "jid": FAKE_GROUP,
        "subject": frame.get("subject") or "fake",
        "participants": [{"jid": j, "role": r} for j, r in members.items()],
    }
    if q in ("group", "create_group"):
        return {"data": info}
    if q == "update_participants":
        results = [
            {"jid": p, "status": 409 if p in members else 200} for p in frame["participants"]
        ]
        members.update({p: "member" for p in frame["participants"]})
        return {"data": results}
    if q == "invite_code":
        return {"data": "FAKEINVITECODE0123456789"}
    return {"refused": {"code": "bad_request", "message": f"unknown query {q!r}"}}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--store", required=True)
    parser.add_argument("--session", required=True)
    parser.add_argument("--log-level", default="WARNING")
    args = parser.parse_args()
    out = sys.stdout.buffer
    lock = threading.Lock()

    def send(frame: wire.Frame) -> None:
        with lock:
            out.write(wire.pack(frame))
            out.flush()

    def event(e: EngineEvent) -> None:
        send({"ev": "event", "event": wire.encode_event(e)})

    if args.session.startswith("hang"):
        time.sleep(3600)
    if args.session.startswith("crash"):
        print("panic: concurrent map read and map write", file=sys.stderr, flush=True)
        os._exit(3)

    store = Path(args.store)
    store.with_name(store.name + ".env").write_text("\n".join(sorted(os.environ)))
    conn = sqlite3.connect(store)
    conn.execute("CREATE TABLE IF NOT EXISTS fake_commits (n INTEGER)")
    conn.execute("INSERT INTO fake_commits VALUES (1)")
    conn.commit()
    event(Connected(ME))
    send({"ev": "hint", "what": "store"})
    if args.session.startswith("media"):
        for wa_id, kind, data, mime, _ in MEDIA_MESSAGES:
            sent_at = datetime.now(UTC)
            message = InboundMessage(wa_id, ME, "15550500002@s.whatsapp.net", kind, {}, sent_at)
            ref = {"message_b64": wire.b64(data), "mime_type": mime, "size": len(data)}
            send({"ev": "event", "event": {**wire.encode_event(message), "media": ref}})
    gone = {wire.b64(data) for _, _, data, _, is_gone in MEDIA_MESSAGES if is_gone}

    counter = 0
    groups: dict[str, dict[str, str]] = {}  # group jid -> member jid -> role
    while True:
        frame = wire.read_frame(sys.stdin.buffer)
        if frame is None or frame.get("op") == "stop":
            break
        req = frame.get("req")
        if frame.get("op") == "logout":
            event(Disconnected(401, "logged out by request"))
            send({"re": req, "ok": {}})
            continue
        if frame.get("op") == "download":
            ref = frame["media"]["message_b64"]
            if ref in gone:
                error = {"code": "not_found", "message": "download failed with status code 404"}
                send({"re": req, "ok": {"error": error}})
            else:
                send({"re": req, "ok": {"data_b64": ref}})
            continue
        if frame.get("op") == "query":
            send({"re": req, "ok": directory_answer(frame, groups)})
            if frame.get("q") == "create_group":  # whatsmeow's JoinedGroup for our own group
                now = datetime.now(UTC)
                event(GroupParticipantsChanged(FAKE_GROUP, "add", (ME,), ME, now))
            continue
        if frame.get("op") == "act":  # a chat action: logged; an edit or revoke is a message
            with store.with_name(store.name + ".acts").open("a") as log:
                log.write(json.dumps({k: frame[k] for k in ("to", "kind", "content")}) + "\n")
            answer: dict[str, object] = {"ts": datetime.now(UTC).timestamp()}
            if frame["kind"] in ("edit", "revoke"):
                counter += 1
                answer["id"] = f"WA{counter}"
            send({"re": req, "ok": answer})
            continue
        if frame.get("op") != "send":
            send({"re": req, "error": "unsupported", "permanent": False})
            continue
        with store.with_name(store.name + ".sends").open("a") as log:
            log.write(f"{frame['to']} {frame['content']}\n")
        body = str(frame["content"].get("body", ""))
        if frame["to"] == NOT_ON_WHATSAPP:
            send({"re": req, "error": f"{NOT_ON_WHATSAPP} is not on WhatsApp", "permanent": True})
            continue
        if body == "rate":
            send({"re": req, "error": "server returned error 429", "permanent": False})
            continue
        if body.startswith("drop:"):
            send({"re": req, "error": "websocket not connected", "permanent": False})
            event(Disconnected(int(body.split(":")[1]), "scripted drop"))
            continue
        if body == "slow":
            time.sleep(1.0)
        counter += 1
        whatsapp_id = f"WA{counter}"
        now = datetime.now(UTC)
        send({"re": req, "ok": {"id": whatsapp_id, "ts": now.timestamp()}})
        event(Receipt((whatsapp_id,), "delivered", str(frame["to"]), now))
        if frame["kind"] == "poll":  # the contact votes for the first option, as whatsmeow reports
            first = hashlib.sha256(str(frame["content"]["options"][0]).encode()).hexdigest()
            content = {"poll_id": whatsapp_id, "selected_hashes": [first]}
            voter = "15550500002@s.whatsapp.net"
            event(InboundMessage(f"VOTE{counter}", voter, voter, "poll_vote", content, now))
    os._exit(0)


if __name__ == "__main__":
    main()
