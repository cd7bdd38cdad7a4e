"""Clients of the simulator for tests, benchmarks and the load check.

`ControlClient` plays the phone and the fault injector over the control API; `DeviceClient`
speaks the device protocol bare (no gateway engine), to test the simulator itself and to load
it cheaply. Both are async and share a caller's aiohttp ClientSession.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable, Collection
from typing import Any

import aiohttp

from simulator.protocol import PROTOCOL_VERSION, WS_PATH, encode


class ControlError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status


class ControlClient:
    def __init__(self, base_url: str, http: aiohttp.ClientSession) -> None:
        self.base_url = base_url.rstrip("/")
        self.http = http

    async def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        async with self.http.request(method, self.base_url + path, json=body) as response:
            payload = await response.json(content_type=None)
            if response.status >= 400:
                message = payload.get("error") if isinstance(payload, dict) else payload
                raise ControlError(response.status, str(message))
            return payload

    async def post(self, path: str, **body: Any) -> Any:
        return await self._call("POST", path, {k: v for k, v in body.items() if v is not None})

    async def get(self, path: str) -> Any:
        return await self._call("GET", path)

    # ------------------------------------------------------------ the phone

    async def scan(self, qr: str, phone: str) -> str:
        return str((await self.post("/control/scan", qr=qr, phone=phone))["jid"])

    async def confirm_pair_code(self, code: str, phone: str) -> str:
        return str((await self.post("/control/pair-code", code=code, phone=phone))["jid"])

    async def pairings(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = await self.get("/control/pairings")
        return result

    async def link(self, phone: str) -> tuple[str, dict[str, Any]]:
        result = await self.post("/control/link", phone=phone)
        return str(result["jid"]), dict(result["creds"])

    async def unlink(self, jid: str) -> None:
        await self.post("/control/unlink", jid=jid)

    async def inbound(
        self,
        to_phone: str,
        sender: str,
        content: dict[str, Any] | None = None,
        *,
        kind: str = "text",
        wa_id: str | None = None,
        addressing: str = "pn",
        media: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """`media`: the file of a media message, as /control/inbound takes it (`data` base64,
        `mime_type`, optional `filename`, `fail_first`, `gone`)."""
        body = {
            "to_phone": to_phone,
            "from": sender,
            "kind": kind,
            "content": content,
            "id": wa_id,
            "addressing": addressing,
            **({"media": media} if media else {}),
        }
        result: dict[str, Any] = await self.post("/control/inbound", **body)
        return result

    async def vote(
        self,
        to_phone: str,
        voter: str,
        poll_id: str,
        options: list[str],
        *,
        wa_id: str | None = None,
        addressing: str = "pn",
    ) -> dict[str, Any]:
        """`voter` votes in the poll `poll_id` that `to_phone` sent them (simulator/polls.py)."""
        body: dict[str, Any] = {"to_phone": to_phone, "from": voter, "poll_id": poll_id}
        body |= {"options": options, "id": wa_id, "addressing": addressing}
        result: dict[str, Any] = await self.post("/control/vote", **body)
        return result

    async def recipient_online(self, phone: str, online: bool) -> None:
        await self.post("/control/recipient-online", phone=phone, online=online)

    # ------------------------------------------------------------ faults

    async def drop(
        self,
        reason: int,
        *,
        jid: str | None = None,
        phone: str | None = None,
        all: bool = False,
        detail: str | None = None,
        abrupt: bool = False,
    ) -> int:
        result = await self.post(
            "/control/drop",
            reason=reason,
            jid=jid,
            phone=phone,
            all=all or None,
            detail=detail,
            abrupt=abrupt or None,
        )
        return int(result["dropped"])

    async def stall(
        self, seconds: float, *, jid: str | None = None, phone: str | None = None
    ) -> None:
        await self.post("/control/stall", seconds=seconds, jid=jid, phone=phone)

    async def freeze(
        self, seconds: float, *, jid: str | None = None, phone: str | None = None
    ) -> None:
        await self.post("/control/freeze", seconds=seconds, jid=jid, phone=phone)

    async def refuse(self, seconds: float, phone: str | None = None) -> None:
        await self.post("/control/refuse", seconds=seconds, phone=phone)

    async def rate_limit(self, phone: str, per_second: float | None, burst: int = 5) -> None:
        body: dict[str, Any] = {"phone": phone, "per_second": per_second, "burst": burst}
        await self._call("POST", "/control/rate-limit", body)

    async def ban(self, phone: str, banned: bool = True) -> int:
        return int((await self.post("/control/ban", phone=phone, banned=banned))["dropped"])

    async def latency(self, ms: float, jitter_ms: float = 0.0, phone: str | None = None) -> None:
        await self.post("/control/latency", ms=ms, jitter_ms=jitter_ms, phone=phone)

    async def not_on_whatsapp(self, phone: str, value: bool = True) -> None:
        await self.post("/control/not-on-whatsapp", phone=phone, value=value)

    async def config(self, **changes: Any) -> dict[str, Any]:
        result: dict[str, Any] = await self._call("POST", "/control/config", changes)
        return result

    # ------------------------------------------------------------ groups (group_control.py)

    async def create_group(self, owner: str, subject: str, members: list[str]) -> str:
        """A group made on `owner`'s phone; returns its jid."""
        result = await self.post("/control/groups", owner=owner, subject=subject, members=members)
        return str(result["jid"])

    async def change_participants(
        self, group: str, action: str, participants: list[str], by: str | None = None
    ) -> list[dict[str, Any]]:
        result = await self.post(
            "/control/group-participants",
            group=group,
            action=action,
            participants=participants,
            by=by,
        )
        results: list[dict[str, Any]] = result["results"]
        return results

    async def groups(self) -> list[dict[str, Any]]:
        result = await self.get("/control/groups")
        groups: list[dict[str, Any]] = result["groups"]
        return groups

    # ------------------------------------------------------------ inspection

    async def received(self, recipient: str) -> list[dict[str, Any]]:
        result = await self.get(f"/control/received/{recipient}")
        messages: list[dict[str, Any]] = result["messages"]
        return messages

    async def chat_events(self, recipient: str) -> list[dict[str, Any]]:
        """The read receipts and presences `recipient` saw, in order."""
        result = await self.get(f"/control/chat-events/{recipient}")
        events: list[dict[str, Any]] = result["events"]
        return events

    async def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = await self.get("/control/stats")
        return result

    async def devices(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = await self.get("/control/devices")
        return result

    async def reset(self) -> None:
        await self.post("/control/reset")


Frame = dict[str, Any]


class DeviceClient:
    """One device socket, bare. Frames land in `frames` (or go to `on_frame` if given);
    `close_code` is set when the socket closes."""

    def __init__(
        self,
        base_url: str,
        http: aiohttp.ClientSession,
        on_frame: Callable[[Frame], None] | None = None,
    ) -> None:
        self.url = base_url.rstrip("/").replace("http", "ws", 1) + WS_PATH
        self.http = http
        self.on_frame = on_frame
        self.frames: asyncio.Queue[Frame] = asyncio.Queue()
        self.log: list[Frame] = []
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.close_code: int | None = None
        self._reader: asyncio.Task[None] | None = None
        self._done = asyncio.Event()

    async def open(
        self,
        creds: dict[str, Any] | None = None,
        *,
        acked: int = 0,
        heartbeat: float | None = None,
        hello: bool = True,
    ) -> None:
        self.ws = await self.http.ws_connect(self.url, heartbeat=heartbeat, max_msg_size=0)
        self._reader = asyncio.create_task(self._read(self.ws))
        if hello:
            await self.send_frame(
                {"t": "hello", "v": PROTOCOL_VERSION, "creds": creds, "acked": acked}
            )

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        try:
            async for msg in ws:
                if msg.type is not aiohttp.WSMsgType.TEXT:
                    continue
                data = json.loads(msg.data)
                for frame in data if isinstance(data, list) else [data]:
                    if self.on_frame is not None:
                        self.on_frame(frame)
                    else:
                        self.log.append(frame)
                        self.frames.put_nowait(frame)
        finally:
            self.close_code = ws.close_code
            self._done.set()

    async def send_frame(self, frame: Frame | list[Frame]) -> None:
        assert self.ws is not None
        await self.ws.send_str(json.dumps(frame) if isinstance(frame, list) else encode(frame))

    async def send(
        self, wa_id: str, to: str, content: dict[str, Any] | None = None, kind: str = "text"
    ) -> None:
        body = content if content is not None else {"body": wa_id}
        await self.send_frame({"t": "send", "id": wa_id, "to": to, "kind": kind, "content": body})

    async def expect(self, kinds: str | Collection[str], timeout: float = 5.0) -> Frame:
        """The next frame of one of `kinds`, skipping others (they stay in `log`)."""
        wanted = {kinds} if isinstance(kinds, str) else set(kinds)
        async with asyncio.timeout(timeout):
            while True:
                frame = await self.frames.get()
                if frame.get("t") in wanted:
                    return frame

    async def collect(self, kind: str, count: int, timeout: float = 5.0) -> list[Frame]:
        return [await self.expect(kind, timeout) for _ in range(count)]

    async def closed(self, timeout: float = 5.0) -> int | None:
        """Wait for the server to close the socket; its close code."""
        async with asyncio.timeout(timeout):
            await self._done.wait()
        return self.close_code

    async def close(self) -> None:
        if self.ws is not None:
            with contextlib.suppress(Exception):
                await self.ws.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
