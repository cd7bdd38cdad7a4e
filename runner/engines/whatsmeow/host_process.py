"""The adapter's side of one whatsmeow host process (runner.engines.whatsmeow.host): starting it
with none of the runner's secrets, numbered requests and their replies over the pipe
(runner.engines.whatsmeow.wire), and stopping it. What the host's events mean for the socket is
the connection's business (runner.engines.whatsmeow.engine), told through `HostListener`.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import os
import re
from pathlib import Path
from typing import Any, Protocol

from runner.engines.event_stream import new_waiter
from runner.engines.received_files import inbound_media
from runner.engines.whatsmeow import wire
from wagate.domain.events import EngineEvent, InboundMessage
from wagate.errors import PermanentSendError, TransientSendError, WagateError
from wagate.logs import get_logger

log = get_logger("wagate.runner.whatsmeow")

STOP_TIMEOUT_S = 3.0
RATE_LIMIT_RETRY_S = 60.0

# What the host process inherits from the runner's environment: enough to run Python and reach
# the network, and none of the runner's secrets (backup keys, internal secret, admin key).
HOST_ENV_KEEP = (
    "PATH",
    "PYTHONPATH",
    "HOME",
    "LANG",
    "LC_ALL",
    "TZ",
    "TMPDIR",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "HTTPS_PROXY",
    "HTTP_PROXY",
    "NO_PROXY",
)
PROXY_ENV = "WAGATE_WHATSMEOW_HOST_PROXY"


def host_environment(proxy: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k in HOST_ENV_KEEP}
    env["PYTHONUNBUFFERED"] = "1"
    if proxy:
        env[PROXY_ENV] = proxy  # not in argv, where `ps` would show credentials in the URL
    return env


def classify_send_error(text: str) -> WagateError:
    """whatsmeow's send errors arrive as strings (neonize flattens Go errors); decide whether a
    retry can help. Unknown errors are transient: the queue's attempt limit ends them."""
    details = [{"reason": text}]
    lowered = text.lower()
    server = re.search(r"server returned error (\d+)", lowered)
    if server is not None:
        code = int(server.group(1))
        if code in (419, 429):  # resource-limit, rate-overlimit
            return TransientSendError(
                f"WhatsApp rate-limited the send: {text}",
                details=details,
                retry_after=RATE_LIMIT_RETRY_S,
            )
        if 400 <= code < 500 and code != 408:
            return PermanentSendError(f"WhatsApp refused the message: {text}", details=details)
        return TransientSendError(f"WhatsApp failed the send: {text}", details=details)
    permanent = ("unknown server", "recipient must be a user jid", "no lid found")
    if any(p in lowered for p in permanent):
        return PermanentSendError(f"invalid recipient: {text}", field="to", details=details)
    return TransientSendError(f"send failed: {text}", details=details)


class HostListener(Protocol):
    """What the connection does with what its host says (called on the host's reading task)."""

    async def on_host_event(self, event: EngineEvent) -> None: ...

    async def on_host_sent(self, wa_id: str, result: dict[str, Any]) -> None:
        """A send's reply, before its waiter sees it (it may have given up already)."""

    def on_host_store_hint(self) -> None:
        """The device store probably changed: capture it now."""

    async def on_host_exit(self, host: HostProcess) -> None: ...


class HostProcess:
    """One running host and its pipe. Frames from a host the connection has `detach`ed (being
    replaced) are dropped: they belong to no socket."""

    def __init__(
        self, proc: asyncio.subprocess.Process, session_id: str, listener: HostListener
    ) -> None:
        self.proc = proc
        self.session_id = session_id
        self.stderr_tail: collections.deque[str] = collections.deque(maxlen=20)
        self._listener = listener
        self._pending: dict[int, tuple[asyncio.Future[dict[str, Any]], str | None]] = {}
        self._next_req = 0
        self._detached = False

    @classmethod
    async def start(
        cls,
        listener: HostListener,
        *,
        python: str,
        module: str,
        store: Path,
        session_id: str,
        log_level: str,
        proxy: str | None,
    ) -> HostProcess:
        """Raises OSError if the process cannot be started."""
        proc = await asyncio.create_subprocess_exec(
            python,
            "-m",
            module,
            "--store",
            str(store),
            "--session",
            session_id,
            "--log-level",
            log_level,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            limit=wire.MAX_FRAME,
            env=host_environment(proxy),
        )
        return cls(proc, session_id, listener)

    @property
    def running(self) -> bool:
        return self.proc.returncode is None

    def reading_tasks(self) -> list[asyncio.Task[None]]:
        return [
            asyncio.create_task(self._read(), name=f"whatsmeow-{self.session_id}"),
            asyncio.create_task(self._read_stderr()),
        ]

    def detach(self) -> None:
        self._detached = True

    async def request(
        self, frame: dict[str, Any], timeout: float, *, wa_id: str | None = None
    ) -> dict[str, Any]:
        """The reply's `ok` object; raises the reply's error, or TimeoutError after `timeout`."""
        stdin = self.proc.stdin
        if stdin is None:
            raise TransientSendError("the session is not connected")
        self._next_req += 1
        req = self._next_req
        future: asyncio.Future[dict[str, Any]] = new_waiter()
        self._pending[req] = (future, wa_id)
        try:
            stdin.write(wire.pack({**frame, "req": req}))
            await stdin.drain()
        except (ConnectionError, RuntimeError) as e:
            self._pending.pop(req, None)
            raise TransientSendError(f"the host pipe failed: {e}") from e
        async with asyncio.timeout(timeout):
            # On timeout the entry stays: a late reply to a send is still recorded and acked.
            return await asyncio.shield(future)

    def fail_pending(self, error: WagateError) -> None:
        pending, self._pending = self._pending, {}
        for future, _ in pending.values():
            if not future.done():
                future.set_exception(error)

    async def stop(self) -> None:
        """Ask the host to stop; kill it if it has not within STOP_TIMEOUT_S."""
        proc = self.proc
        if proc.returncode is None and proc.stdin is not None:
            with contextlib.suppress(ConnectionError, RuntimeError, OSError):
                proc.stdin.write(wire.pack({"op": "stop"}))
                await proc.stdin.drain()
                proc.stdin.close()
        try:
            async with asyncio.timeout(STOP_TIMEOUT_S):
                await proc.wait()
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()

    async def wait_exit(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.proc.wait(), STOP_TIMEOUT_S)

    async def _read(self) -> None:
        stdout = self.proc.stdout
        assert stdout is not None
        try:
            while True:
                header = await stdout.readexactly(wire.HEADER_SIZE)
                body = await stdout.readexactly(wire.frame_length(header))
                frame = wire.unpack(body)
                if self._detached:
                    continue
                try:
                    if "re" in frame:
                        await self._on_reply(frame)
                    elif frame.get("ev") == "event":
                        await self._listener.on_host_event(self._event(frame["event"]))
                    elif frame.get("ev") == "hint":
                        self._listener.on_host_store_hint()
                except (KeyError, TypeError, ValueError) as e:  # one bad frame, not a dead pipe
                    log.warning("unreadable host frame", session_id=self.session_id, error=str(e))
        except (asyncio.IncompleteReadError, ConnectionError, wire.FrameError) as e:
            if isinstance(e, wire.FrameError):
                log.warning("bad frame from the host", session_id=self.session_id, error=str(e))
        finally:
            await self._listener.on_host_exit(self)

    def _event(self, data: dict[str, Any]) -> EngineEvent:
        """A host event; an inbound one's file is downloaded by this host (op download)."""
        event = wire.decode_event(data)
        if isinstance(event, InboundMessage) and data.get("media"):
            return dataclasses.replace(event, media=inbound_media(data["media"], self.request))
        return event

    async def _read_stderr(self) -> None:
        stderr = self.proc.stderr
        assert stderr is not None
        while line := await stderr.readline():
            text = line.decode(errors="replace").rstrip()
            if text:
                self.stderr_tail.append(text)
                log.debug("whatsmeow host", session_id=self.session_id, line=text[:500])

    async def _on_reply(self, frame: dict[str, Any]) -> None:
        entry = self._pending.pop(int(frame["re"]), None)
        if entry is None:
            return
        future, wa_id = entry
        if "ok" in frame:
            result = dict(frame["ok"] or {})
            if wa_id is not None:
                await self._listener.on_host_sent(wa_id, result)
            if not future.done():
                future.set_result(result)
            return
        text = str(frame.get("error", "unknown error"))
        error: WagateError
        if frame.get("permanent"):
            error = PermanentSendError(text, field="to", details=[{"reason": text}])
        else:
            error = classify_send_error(text)
        if not future.done():
            future.set_exception(error)
