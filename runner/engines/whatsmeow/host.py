"""The whatsmeow host: a child process that holds ONE WhatsApp socket through neonize, started by
the adapter (runner.engines.whatsmeow.engine) as `python -m runner.engines.whatsmeow.host`.

Why a process per socket rather than threads in the runner: neonize's Go core keeps its clients
in plain Go maps written by `Neonize()` and `Stop()` and read by every call (goneonize/main.go),
without a lock. Two sockets connecting, or one sending while another stops, can race on them,
and Go ends the whole process on a concurrent map access — and so would any Go panic (a call
on a client that is already stopped dereferences nil). In a process of its own, one client is
all the maps ever hold, and whatever goes wrong ends this socket only: the adapter reports
`Disconnected(500)` and the supervisor reconnects. The cost is memory (docs/engines.md).

Protocol (runner.engines.whatsmeow.wire, frames on stdin / the original stdout):
- in:  {"op": "send"|"act"|"pair_phone"|"logout"|"download"|"stop", "req": n, …} (act: actions.py)
- out: {"re": n, "ok": {…}} or {"re": n, "error": "…", "permanent": bool};
       {"ev": "event", "event": {…}} (wagate events), {"ev": "hint", "what": "store"} (the
       device store probably changed: capture it now).
Exactly one `disconnected` event is sent per process; after it the host forwards nothing and
waits for "stop". Anything the library prints goes to stderr, never into the pipe.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import logging
import os
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, BinaryIO

from google.protobuf.message import DecodeError
from neonize._binder import ProxySettings
from neonize.client import NewClient
from neonize.events import ConnectedEv, HistorySyncEv, MessageEv, PairStatusEv, ReceiptEv
from neonize.exc import DownloadError
from neonize.proto.waE2E.WAWebProtobufsE2E_pb2 import Message

from runner.engines.whatsmeow import actions, host_directory, inbound, outbound, reasons, wire
from wagate.domain.events import Connected, Disconnected, EngineEvent, InboundMessage, QrCode
from wagate.domain.sessions import DisconnectReason

# Every event the host listens to; neonize forwards only subscribed ones from the Go core.
SUBSCRIBED = (
    ConnectedEv,
    *reasons.CONNECTION_EVENTS,
    *inbound.MESSAGE_EVENTS,
    *host_directory.GROUP_EVENTS,
)


class _Out:
    """The pipe to the adapter; written from the library's callback thread and worker threads."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def send(self, frame: wire.Frame) -> None:
        data = wire.pack(frame)
        with self._lock:
            try:
                self._stream.write(data)
                self._stream.flush()
            except (BrokenPipeError, ValueError, OSError):
                os._exit(0)  # the runner is gone: nobody to serve


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="runner.engines.whatsmeow.host")
    parser.add_argument("--store", required=True, help="path of the session's SQLite store")
    parser.add_argument("--session", required=True, help="wagate session id")
    parser.add_argument("--log-level", default="WARNING")
    args = parser.parse_args(argv)

    # Keep the real stdout for frames, and point fd 1 at stderr: the Go core prints to stdout.
    pipe = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)
    out = _Out(pipe)
    level = getattr(logging, str(args.log_level).upper(), logging.WARNING)
    logging.basicConfig(stream=sys.stderr, level=level)

    # The proxy comes in the environment, not argv, where `ps` would show its credentials.
    proxy = os.environ.get("WAGATE_WHATSMEOW_HOST_PROXY") or None
    host = Host(out, Path(args.store), args.session, level, proxy=proxy)
    host.start()
    stdin = sys.stdin.buffer
    while True:
        try:
            frame = wire.read_frame(stdin)
        except wire.FrameError:
            break
        if frame is None or frame.get("op") == "stop":
            break
        host.handle(frame)
    host.stop()
    sys.stderr.flush()
    os._exit(0)  # the library's worker thread is not a daemon; do not wait for it


class _Client(NewClient):  # type: ignore[misc]
    """neonize hands the QR channel's end states ("success", "timeout", "err-…") to this
    name-mangled hook and only prints them; the host needs them."""

    on_login_status: Callable[[str], None] | None = None

    def _NewClient__onLoginStatus(self, uuid: int, status: int) -> None:
        if self.on_login_status is not None:
            self.on_login_status(ctypes.string_at(status).decode(errors="replace"))


class Host:
    def __init__(
        self, out: _Out, store: Path, session_id: str, log_level: int, proxy: str | None = None
    ) -> None:
        logging.getLogger("neonize.utils.log").setLevel(log_level)
        # Media messages are built here without ffmpeg; its "not found" warning is noise.
        logging.getLogger("neonize.utils.ffmpeg").setLevel(logging.ERROR)
        self._out = out
        self._mapper = reasons.ReasonMapper()
        self._closed = threading.Event()
        self._qr_index = 0
        self._me = ""
        self._on_whatsapp: set[str] = set()
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="op")
        self._proxy = ProxySettings(proxy_address=proxy) if proxy else None
        # The store path doubles as neonize's database name (goneonize opens "file:<name>").
        self.client = _Client(str(store.resolve()), uuid=session_id)
        self.client.on_login_status = self._on_login_status
        self.client.event.qr(self._on_qr)
        for event in SUBSCRIBED:
            self.client.event(event)(self._on_event)

    # ------------------------------------------------------------ the socket

    def start(self) -> None:
        threading.Thread(target=self._run, name="neonize", daemon=True).start()

    def _run(self) -> None:
        try:
            self.client.connect(self._proxy)  # blocks until stop(); raises if it never opened
        except Exception as e:
            self._close(reasons.connect_error_close(str(e) or type(e).__name__))

    def stop(self) -> None:
        self._closed.set()
        with contextlib.suppress(Exception):
            self.client.stop()

    def _emit(self, event: EngineEvent, media: dict[str, Any] | None = None) -> None:
        """`media`: a media message's file (inbound.message_media), downloaded on request."""
        if not self._closed.is_set():
            encoded = wire.encode_event(event)
            if media:
                encoded["media"] = media
            self._out.send({"ev": "event", "event": encoded})

    def _hint_store(self) -> None:
        if not self._closed.is_set():
            self._out.send({"ev": "hint", "what": "store"})

    def _close(self, close: reasons.Close) -> None:
        if self._closed.is_set():
            return
        self._out.send(
            {"ev": "event", "event": wire.encode_event(Disconnected(close.reason, close.detail))}
        )
        self._closed.set()

    # ------------------------------------------------------------ library callbacks

    def _on_qr(self, _client: Any, data: bytes) -> None:
        code = data.decode(errors="replace")
        self._emit(QrCode(code, inbound.qr_expiry(self._qr_index)))
        self._qr_index += 1

    def _on_login_status(self, status: str) -> None:
        close = reasons.login_status_close(status)
        if close is not None:
            self._close(close)

    def _on_event(self, _client: Any, event: Any) -> None:
        try:
            self._dispatch(event)
        except Exception as e:  # a callback must never raise into the Go core
            logging.getLogger("wagate.whatsmeow.host").exception("event %s: %s", type(event), e)

    def _dispatch(self, event: Any) -> None:
        close = self._mapper.on_event(event)
        if close is not None:
            self._hint_store()
            self._close(close)
            return
        if isinstance(event, PairStatusEv):
            if event.Status == PairStatusEv.SUCCESS:
                self._me = inbound.jid_str(event.ID)
            self._hint_store()
        elif isinstance(event, ConnectedEv):
            me = self.client.me
            if me is None or not me.JID.User:
                me = self.client.get_me()
            self._me = inbound.jid_str(me.JID) or self._me
            self._hint_store()
            self._emit(Connected(self._me))
        elif isinstance(event, MessageEv) and event.Message.HasField("pollUpdateMessage"):
            self._emit(self._poll_vote(event))
        elif isinstance(event, MessageEv):
            message = inbound.inbound_message(event)
            if message is not None:
                self._emit(message, inbound.message_media(event.Message))
        elif isinstance(event, HistorySyncEv):
            files = inbound.history_media(event)
            for message in inbound.history_messages(event, self._me):
                self._emit(message, files.get(message.wa_id))
            self._hint_store()
        elif isinstance(event, ReceiptEv):
            receipt = inbound.receipt(event)
            if receipt is not None:
                self._emit(receipt)
        elif isinstance(event, host_directory.GROUP_EVENTS):
            for change in host_directory.participant_events(event, self._me):
                self._emit(change)

    def _poll_vote(self, event: MessageEv) -> InboundMessage:
        """whatsmeow decrypts a vote with the poll's secret from its store (filed when the poll
        was sent); a vote in a poll it has no secret for is reported undecrypted."""
        try:
            vote = self.client.decrypt_poll_vote(event)
        except Exception as e:
            return inbound.poll_vote(event, None, f"the vote cannot be decrypted: {e}")
        return inbound.poll_vote(event, list(vote.selectedOptions))

    # ------------------------------------------------------------ requests

    def handle(self, frame: wire.Frame) -> None:
        self._pool.submit(self._answer, frame)

    def _answer(self, frame: wire.Frame) -> None:
        req = frame.get("req")
        try:
            result = self._do(frame)
        except outbound.ContentError as e:
            self._out.send({"re": req, "error": str(e), "permanent": True, "code": "content"})
        except Exception as e:
            self._out.send({"re": req, "error": str(e) or type(e).__name__, "permanent": False})
        else:
            self._out.send({"re": req, "ok": result})

    def _do(self, frame: wire.Frame) -> dict[str, Any]:
        op = frame.get("op")
        if op == "send":
            to = outbound.recipient_jid(str(frame["to"]))
            if to.Server == outbound.USER_SERVER and to.User not in self._on_whatsapp:
                found = self.client.is_on_whatsapp("+" + to.User)
                if not any(r.IsIn for r in found):
                    raise outbound.ContentError(f"+{to.User} is not on WhatsApp")
                self._on_whatsapp.add(to.User)
            media = frame.get("media")
            message = outbound.build_message(
                str(frame["kind"]),
                dict(frame.get("content") or {}),
                to=to,
                media=wire.unb64(media) if isinstance(media, str) else None,
                upload=self.client.upload,
                reaction_from_me=bool(frame.get("reaction_from_me")),
            )
            sent = self.client.send_message(to, message)
            self._hint_store()
            return {"id": sent.ID, "ts": float(sent.Timestamp)}
        if op == "download":
            return download_file(self.client, dict(frame.get("media") or {}), int(frame["limit"]))
        if op == "act":
            result = actions.act(self.client, frame)
            self._hint_store()
            return result
        if op == "pair_phone":
            code = self.client.PairPhone(str(frame["phone"]).removeprefix("+"), True)
            return {"code": str(code)}
        if op == "query":  # number checks and groups (host_directory.py)
            return host_directory.run_query(self.client, frame)
        if op == "logout":
            self.client.logout()
            self._close(reasons.Close(DisconnectReason.LOGGED_OUT, "logged out by request"))
            return {}
        raise ValueError(f"unknown op {op!r}")


def download_file(client: Any, media: dict[str, Any], limit: int) -> dict[str, Any]:
    """A received file (inbound.message_media) through neonize's download_any, which fetches it
    from WhatsApp's media hosts and checks and decrypts it: `data_b64`, or an `error` with the
    code the runner's retries go by (runner/engines/received_files.py)."""

    def error(code: str, message: str) -> dict[str, Any]:
        return {"error": {"code": code, "message": message}}

    if int(media.get("size") or 0) > limit:
        return error("payload_too_large", f"the file has {media['size']} bytes")
    try:
        message = Message.FromString(wire.unb64(str(media["message_b64"])))
        data = client.download_any(message)
    except (KeyError, ValueError, DecodeError) as e:
        return error("invalid", f"not a media reference: {e}")
    except DownloadError as e:
        text = str(e)
        gone = any(status in text for status in ("404", "410"))
        return error("not_found" if gone else "dependency_unavailable", text)
    if data is None:
        return error("not_found", "the message has no file")
    if len(data) > limit:
        return error("payload_too_large", f"the file has more than {limit} bytes")
    return {"data_b64": wire.b64(data)}


if __name__ == "__main__":
    main()
