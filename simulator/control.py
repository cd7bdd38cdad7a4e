"""The control API: the phone's side of pairing, inbound messages, fault injection and the
inspection endpoints tests count with. JSON in, JSON out; bodies are validated by pydantic and
a refused request answers `{"error": "..."}` with 400 or 404.
"""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable
from typing import Any, Literal, TypeVar

import psutil
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from simulator.errors import SimulatorError
from simulator.media import SHELF, MediaFile
from simulator.protocol import REASONS
from simulator.sockets import WORLD
from simulator.world import World

M = TypeVar("M", bound=BaseModel)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Scan(Body):
    qr: str
    phone: str


class PairCode(Body):
    code: str
    phone: str


class Phone(Body):
    phone: str


class Unlink(Body):
    jid: str


class InboundFile(Body):
    """The file of an inbound media message, served by the simulator's media host."""

    data: str = Field(description="the file, base64")
    mime_type: str = Field(min_length=3, max_length=127)
    filename: str | None = Field(None, max_length=255)
    fail_first: int = Field(0, ge=0, le=100, description="downloads answered 503 first")
    gone: bool = Field(False, description="every download answers 404")


class Inbound(Body):
    to_phone: str
    from_: str = Field(alias="from")
    kind: str = "text"
    content: dict[str, Any] = Field(default_factory=lambda: {"body": ""})
    id: str | None = Field(None, min_length=1, max_length=128)
    addressing: Literal["pn", "lid"] = "pn"
    media: InboundFile | None = None


class Vote(Body):
    to_phone: str  # the account that sent the poll
    from_: str = Field(alias="from")  # the voter, who received it
    poll_id: str = Field(min_length=1, max_length=128)
    options: list[str] = Field(max_length=12)
    id: str | None = Field(None, min_length=1, max_length=128)
    addressing: Literal["pn", "lid"] = "pn"


class Target(Body):
    """Which devices a fault hits: one device (`jid`), every device of a number (`phone`), or
    every device (`all`)."""

    jid: str | None = None
    phone: str | None = None
    all: bool = False


class Drop(Target):
    reason: int = Field(ge=1, le=999)
    detail: str = ""
    abrupt: bool = Field(False, description="Drop TCP without a close frame")


class Timed(Target):
    seconds: float = Field(ge=0, le=3600)


class Refuse(Body):
    seconds: float = Field(ge=0, le=3600)
    phone: str | None = None


class RateLimit(Body):
    phone: str
    per_second: float | None = Field(None, gt=0)
    burst: int = Field(5, ge=1)


class Ban(Body):
    phone: str
    banned: bool = True


class Latency(Body):
    phone: str | None = None
    ms: float = Field(ge=0, le=600_000)
    jitter_ms: float = Field(0.0, ge=0, le=600_000)


class Flag(Body):
    phone: str
    value: bool = True


class Online(Body):
    phone: str
    online: bool


def _world(request: web.Request) -> World:
    return request.app[WORLD]


async def _body(request: web.Request, model: type[M]) -> M:
    try:
        raw = await request.json() if request.can_read_body else {}
    except ValueError as e:
        raise SimulatorError("the body must be JSON") from e
    try:
        return model.model_validate(raw)
    except ValidationError as e:
        raise SimulatorError(str(e)) from e


def _ok(payload: Any = None) -> web.Response:
    return web.json_response({"ok": True} if payload is None else payload)


@web.middleware
async def errors_as_json(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except SimulatorError as e:
        return web.json_response({"error": str(e)}, status=e.status)


# ------------------------------------------------------------------ pairing (the phone)


async def scan(request: web.Request) -> web.Response:
    body = await _body(request, Scan)
    device = _world(request).scan(body.qr, body.phone)
    return _ok({"jid": device.jid})


async def pair_code(request: web.Request) -> web.Response:
    body = await _body(request, PairCode)
    device = _world(request).confirm_pair_code(body.code, body.phone)
    return _ok({"jid": device.jid})


async def pairings(request: web.Request) -> web.Response:
    return _ok(_world(request).describe_pairings())


async def link(request: web.Request) -> web.Response:
    body = await _body(request, Phone)
    device, creds = _world(request).link_device(body.phone)
    return _ok({"jid": device.jid, "creds": creds})


async def unlink(request: web.Request) -> web.Response:
    body = await _body(request, Unlink)
    world = _world(request)
    (device,) = world.select(jid=body.jid)
    world.unlink(device)
    return _ok()


async def inbound(request: web.Request) -> web.Response:
    body = await _body(request, Inbound)
    media = None
    if body.media is not None:
        try:
            data = base64.b64decode(body.media.data, validate=True)
        except ValueError as e:
            raise SimulatorError("media.data must be base64") from e
        file = MediaFile(data, body.media.mime_type, body.media.fail_first, body.media.gone)
        media = request.app[SHELF].put(file, body.media.filename)
    result = _world(request).inbound(
        body.to_phone, body.from_, body.kind, body.content, body.id, body.addressing, media
    )
    return _ok(result)


async def vote(request: web.Request) -> web.Response:
    body = await _body(request, Vote)
    result = _world(request).vote(
        body.to_phone, body.from_, body.poll_id, body.options, body.id, body.addressing
    )
    return _ok(result)


# ------------------------------------------------------------------ faults


def _select(world: World, target: Target) -> list[Any]:
    return world.select(jid=target.jid, phone=target.phone, every=target.all)


async def drop(request: web.Request) -> web.Response:
    body = await _body(request, Drop)
    if body.reason not in REASONS:
        raise SimulatorError(f"reason must be one of {sorted(REASONS)}")
    world = _world(request)
    devices = _select(world, body)
    dropped = world.drop(
        devices, body.reason, body.detail, abrupt=body.abrupt, pairing_links=body.all
    )
    return _ok({"dropped": dropped})


async def stall(request: web.Request) -> web.Response:
    body = await _body(request, Timed)
    world = _world(request)
    devices = _select(world, body)
    if body.all:
        accounts = list(world.accounts.values())
    elif body.phone:
        accounts = [world.account(world.phone_of(body.phone))]
    else:
        accounts = []
    world.stall(devices, accounts, body.seconds)
    return _ok({"stalled": len(devices)})


async def freeze(request: web.Request) -> web.Response:
    body = await _body(request, Timed)
    world = _world(request)
    return _ok({"frozen": world.freeze(_select(world, body), body.seconds)})


async def refuse(request: web.Request) -> web.Response:
    body = await _body(request, Refuse)
    _world(request).refuse(body.seconds, body.phone)
    return _ok()


async def rate_limit(request: web.Request) -> web.Response:
    body = await _body(request, RateLimit)
    _world(request).set_rate_limit(body.phone, body.per_second, body.burst)
    return _ok()


async def ban(request: web.Request) -> web.Response:
    body = await _body(request, Ban)
    return _ok({"dropped": _world(request).ban(body.phone, body.banned)})


async def latency(request: web.Request) -> web.Response:
    body = await _body(request, Latency)
    _world(request).set_latency(body.phone, body.ms, body.jitter_ms)
    return _ok()


async def not_on_whatsapp(request: web.Request) -> web.Response:
    body = await _body(request, Flag)
    _world(request).mark_not_on_whatsapp(body.phone, body.value)
    return _ok()


async def recipient_online(request: web.Request) -> web.Response:
    body = await _body(request, Online)
    _world(request).set_recipient_online(body.phone, body.online)
    return _ok()


async def get_config(request: web.Request) -> web.Response:
    return _ok(_world(request).settings.model_dump())


async def set_config(request: web.Request) -> web.Response:
    world = _world(request)
    try:
        raw = await request.json()
        merged = world.settings.model_validate({**world.settings.model_dump(), **raw})
    except (ValueError, TypeError, ValidationError) as e:
        raise SimulatorError(f"bad config: {e}") from e
    world.settings = merged
    return _ok(merged.model_dump())


# ------------------------------------------------------------------ inspection


async def received(request: web.Request) -> web.Response:
    recipient = request.match_info["recipient"]
    messages = _world(request).received(recipient)
    return _ok({"recipient": recipient, "count": len(messages), "messages": messages})


async def chat_events(request: web.Request) -> web.Response:
    recipient = request.match_info["recipient"]
    events = _world(request).chat_events(recipient)
    return _ok({"recipient": recipient, "count": len(events), "events": events})


async def stats(request: web.Request) -> web.Response:
    snapshot = _world(request).snapshot()
    snapshot["rss_bytes"] = psutil.Process().memory_info().rss
    return _ok(snapshot)


async def devices(request: web.Request) -> web.Response:
    return _ok(_world(request).describe_devices())


async def reset(request: web.Request) -> web.Response:
    _world(request).reset()
    request.app[SHELF].clear()
    return _ok()


def add_routes(app: web.Application) -> None:
    app.middlewares.append(errors_as_json)
    app.router.add_routes(
        [
            web.post("/control/scan", scan),
            web.post("/control/pair-code", pair_code),
            web.get("/control/pairings", pairings),
            web.post("/control/link", link),
            web.post("/control/unlink", unlink),
            web.post("/control/inbound", inbound),
            web.post("/control/vote", vote),
            web.post("/control/drop", drop),
            web.post("/control/stall", stall),
            web.post("/control/freeze", freeze),
            web.post("/control/refuse", refuse),
            web.post("/control/rate-limit", rate_limit),
            web.post("/control/ban", ban),
            web.post("/control/latency", latency),
            web.post("/control/not-on-whatsapp", not_on_whatsapp),
            web.post("/control/recipient-online", recipient_online),
            web.get("/control/config", get_config),
            web.post("/control/config", set_config),
            web.get("/control/received/{recipient}", received),
            web.get("/control/chat-events/{recipient}", chat_events),
            web.get("/control/stats", stats),
            web.get("/control/devices", devices),
            web.post("/control/reset", reset),
        ]
    )
