"""`pipeline`: throughput from accepted to sent with 50 sessions: clients POST to the api function
at a fixed concurrency; the figure is messages/s until the runner recorded every one as sent.
The raw baseline, in the same run and at the same concurrency, makes the same unavoidable
calls directly: one Firestore write (of the message document wagate stores), one Cloud Task
created and dispatched (to a bare aiohttp target in this process), one simulator send + ack
over the simulated engine, one Firestore update per message (the `sent` status and its time).
What wagate adds on top is its own cost: the API (HTTP, auth, validation), the pending/{id}
entry, the claim transaction, the order check, receipts. Both sides warm up first and are
measured in turns (run_pipeline). The simulator-only rate is printed for reference.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import psutil
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from bench.common import Result, stack
from bench.costs import counted_turn
from bench.provisioning import UNPACED, create_tenant, provision_sessions
from bench.sessions import _wait_connected
from devstack.processes import free_port
from devstack.provision import queue_proto
from devstack.stack import Stack
from runner.engines.simulated import SimulatedConnection, SimulatedEngine
from wagate.adapters.billing import COUNT_ENV
from wagate.adapters.firestore import FirestoreStore, to_fields
from wagate.adapters.firestore import make_client as firestore_client
from wagate.adapters.tasks import make_client as tasks_client
from wagate.config import Settings
from wagate.contracts import MessageDoc, TextContent
from wagate.domain.events import Connected
from wagate.domain.ids import whatsapp_message_id
from wagate.domain.messages import MessageStatus
from wagate.queues import QueueSpec

PIPELINE_TARGET = 0.8  # SPEC §9
SESSIONS = 50
CONCURRENCY = 32


def _post_all(s: Stack, key: str, session_ids: list[str], count: int) -> float:
    """POST `count` text messages, CONCURRENCY at a time, from one asyncio loop; the time the
    first was posted. The load generator shares the machine's 2 cores with the system under
    test, so it should cost as little CPU as it can (32 threads of a synchronous client cost
    about twice as much)."""
    headers = {"Authorization": f"Bearer {key}"}

    async def post_all() -> float:
        sem = asyncio.Semaphore(CONCURRENCY)
        connector = aiohttp.TCPConnector(limit=CONCURRENCY)
        timeout = aiohttp.ClientTimeout(total=60)
        async with aiohttp.ClientSession(
            s.url["api"], connector=connector, timeout=timeout, headers=headers
        ) as client:

            async def post(i: int) -> None:
                sid = session_ids[i % len(session_ids)]
                body = {"to": f"+1500{i:07d}", "content": {"type": "text", "body": f"m{i}"}}
                async with sem, client.post(f"/v1/sessions/{sid}/messages", json=body) as r:
                    if r.status != 202:
                        raise RuntimeError(f"POST answered {r.status}: {await r.text()}")

            started = time.monotonic()
            await asyncio.gather(*(post(i) for i in range(count)))
            return started

    return asyncio.run(post_all())


def _send_answers(runner_url: str) -> dict[str, int]:
    """The runner's answers to send tasks so far, by HTTP status (its /metrics): a turn with
    many 503s or 429s spent its time on retries."""
    text = httpx.get(f"{runner_url}/metrics", timeout=10).text
    answers: dict[str, int] = {}
    for family in text_string_to_metric_families(text):
        if family.name == "wagate_send_results":
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    answers[sample.labels["status"]] = int(sample.value)
    return answers


def _sent_count(runner_url: str) -> int:
    detail = httpx.get(f"{runner_url}/health", params={"detailed": "true"}, timeout=10).json()
    return int(detail.get("sent", 0))


class RawPipeline:
    """The same unavoidable calls, made directly."""

    def __init__(self, s: Stack, states: list[bytes]) -> None:
        self.settings = Settings()
        self.s = s
        self.states = states
        self.store = FirestoreStore(firestore_client(self.settings.project_id))
        self.raw = self.store.client.collection("raw_messages")
        self.tasks = tasks_client(self.settings.tasks_endpoint)
        self.pool = ThreadPoolExecutor(CONCURRENCY * 2)
        self.done = 0
        self.expected = 0
        self.all_done = asyncio.Event()
        self.drains: list[asyncio.Task[None]] = []
        self.conns: list[SimulatedConnection] = []
        self._queue_path = ""

    async def run(self, count: int) -> float:
        self.done = 0
        self.expected = count
        self.all_done = asyncio.Event()
        self.drains = []
        engine = SimulatedEngine(self.s.url["simulator"])
        self.conns = [engine.open("raw", st) for st in self.states]
        await asyncio.gather(*(self._connect(c) for c in self.conns))
        port = free_port()
        app = web.Application()
        app.add_routes([web.post("/raw", self._dispatch)])
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        if not self._queue_path:  # one queue for every run
            self._queue_path = self._queue()
        queue = self._queue_path
        loop = asyncio.get_running_loop()
        sem = asyncio.Semaphore(CONCURRENCY)
        started = time.monotonic()

        async def accept(i: int) -> None:
            async with sem:
                await loop.run_in_executor(self.pool, self._accept, i, queue, port)

        await asyncio.gather(*(accept(i) for i in range(count)))
        await self.all_done.wait()
        elapsed = time.monotonic() - started
        await runner.cleanup()
        await asyncio.gather(*(c.close() for c in self.conns))
        await engine.aclose()
        return count / elapsed

    async def _connect(self, conn: SimulatedConnection) -> None:
        await conn.connect()
        async for event in conn.events():
            if isinstance(event, Connected):
                self.drains.append(asyncio.create_task(self._drain(conn)))
                return

    async def _drain(self, conn: SimulatedConnection) -> None:
        async for _ in conn.events():
            pass

    def _queue(self) -> str:
        parent = f"projects/{self.settings.project_id}/locations/{self.settings.region}"
        spec = QueueSpec("raw-bench", 500.0, 200, 1.0, 10.0, 4, -1, 60.0)
        path = f"{parent}/queues/{spec.name}"
        self.tasks.create_queue(parent=parent, queue=queue_proto(path, spec))
        return path

    def _accept(self, i: int, queue: str, port: int) -> None:
        mid = f"raw-{i}-{uuid.uuid4().hex[:6]}"
        # The document wagate stores (SPEC §2), as accept-latency's baseline writes it: the
        # emulator's cost of a write grows with its fields.
        now = datetime.now(UTC)
        doc = MessageDoc(
            id=mid,
            tenant_id="ten_raw",
            session_id="ses_raw",
            shard=0,
            to=f"+1600{i:07d}",
            content=TextContent(body=f"m{i}"),
            wa_id=whatsapp_message_id(mid),
            status_times={MessageStatus.ACCEPTED.value: now},
            created_at=now,
            updated_at=now,
        )
        self.raw.document(mid).set(to_fields(doc))
        self.tasks.create_task(
            parent=queue,
            task={
                "name": f"{queue}/tasks/{mid}",
                "http_request": {
                    "url": f"http://127.0.0.1:{port}/raw",
                    "http_method": "POST",
                    "body": json.dumps({"id": mid, "i": i}).encode(),
                },
            },
        )

    async def _dispatch(self, request: web.Request) -> web.Response:
        body = await request.json()
        i = int(body["i"])
        conn = self.conns[i % len(self.conns)]
        await conn.send(
            whatsapp_message_id(body["id"]), f"+1600{i:07d}", "text", {"body": f"m{i}"}, timeout=30
        )
        loop = asyncio.get_running_loop()
        now = datetime.now(UTC)
        sent = {"status": MessageStatus.SENT.value, "status_times.sent": now, "updated_at": now}
        await loop.run_in_executor(self.pool, lambda: self.raw.document(body["id"]).update(sent))
        self.done += 1
        if self.done >= self.expected:
            self.all_done.set()
        return web.Response(status=200)


async def _simulator_only(s: Stack, states: list[bytes], count: int) -> float:
    engine = SimulatedEngine(s.url["simulator"])
    conns = [engine.open("sim", st) for st in states]
    for c in conns:
        await c.connect()
    sem = asyncio.Semaphore(CONCURRENCY)
    started = time.monotonic()

    async def one(i: int) -> None:
        async with sem:
            await conns[i % len(conns)].send(
                f"3EB0SIM{i:012d}", f"+1700{i:07d}", "text", {"body": "x"}, timeout=30
            )

    await asyncio.gather(*(one(i) for i in range(count)))
    rate = count / (time.monotonic() - started)
    await asyncio.gather(*(c.close() for c in conns))
    await engine.aclose()
    return rate


def _cpu_by_process(s: Stack) -> dict[str, float]:
    """CPU seconds used so far by each service of the stack (with its children) and by this
    process (the load generator or the raw client, "bench"): the whole machine's work, split
    so that a slow turn shows where its CPU went."""
    groups: dict[str, list[psutil.Process]] = {"bench": [psutil.Process()]}
    for name, service in s.services.items():
        if service.alive and service.process is not None:
            with contextlib.suppress(psutil.NoSuchProcess):
                root = psutil.Process(service.process.pid)
                groups[name] = [root, *root.children(recursive=True)]
    used: dict[str, float] = {}
    for name, procs in groups.items():
        used[name] = 0.0
        for proc in procs:
            with contextlib.suppress(psutil.NoSuchProcess):
                t = proc.cpu_times()
                used[name] += t.user + t.system
    return used


def run_pipeline(quick: bool = False, sessions: int | None = None, **_: Any) -> Result:
    """Both sides first send `warm_up` messages that are not counted, then are measured in turns
    wagate, raw, raw, wagate (half of each side's messages each time), so a drift
    during the run weighs on both alike. The Firestore emulator is a JVM whose CPU per call falls
    to a third as its JIT warms up: before this, wagate ran first on a cold emulator and the
    baseline on the warm one it left behind (docs/decisions.md). The CPU the whole machine
    spent per message on each side is printed too: on 2 cores it decides the throughput, and it
    is steadier than the rates."""
    count = 600 if quick else 3000
    warm_up = 600 if quick else 1500
    turns = "wrrw"
    n_sessions = sessions or SESSIONS
    counts = Path(tempfile.mkdtemp(prefix="wagate-bench-counts-"))
    with stack(everything=True, extra_env={COUNT_ENV: str(counts)}) as s:
        tenant_id, key = create_tenant(s, "bench", UNPACED)
        s.services["runner-0"].stop()  # restart it after provisioning so it restores them
        session_ids = provision_sessions(s, n_sessions, tenant_id=tenant_id)
        s.start(s.runner_service(0))
        _wait_connected(s.runner_url(0), n_sessions, 60)
        from bench.sessions import _states_for_baseline

        states = _states_for_baseline(s.url["simulator"], n_sessions)
        raw = RawPipeline(s, states)
        side = {
            "w": lambda n: _wagate_pipeline(s, key, session_ids, n),
            "r": lambda n: asyncio.run(raw.run(n)),
        }
        side["w"](warm_up)
        side["r"](warm_up)
        per_turn = count * 2 // len(turns)
        seconds = {"w": 0.0, "r": 0.0}
        cpu = {"w": 0.0, "r": 0.0}
        rounds: list[str] = []
        where: list[dict[str, float]] = []  # CPU ms per message by process, each turn
        answers: dict[str, dict[str, int]] = {}  # the runner's answers, each wagate turn
        for turn in turns:
            before = _cpu_by_process(s)
            answers_before = _send_answers(s.runner_url(0))
            rate = side[turn](per_turn)
            after = _cpu_by_process(s)
            if turn == "w":
                answers_after = _send_answers(s.runner_url(0))
                answers[f"wagate {rate:.1f}/s"] = {
                    k: n - answers_before.get(k, 0) for k, n in answers_after.items()
                }
            used = {k: (after[k] - before.get(k, 0.0)) * 1000 / per_turn for k in after}
            cpu[turn] += sum(used.values()) * per_turn / 1000
            seconds[turn] += per_turn / rate
            rounds.append(f"{'wagate' if turn == 'w' else 'raw'} {rate:.1f}/s")
            where.append({k: round(v, 2) for k, v in used.items() if v >= 0.05})
        wagate_rate = count / seconds["w"]
        raw_rate = count / seconds["r"]
        sim_rate = asyncio.run(_simulator_only(s, states, count))
        cost = counted_turn(
            counts,
            s.runner_url(0),
            lambda n: _wagate_pipeline(s, key, session_ids, n),
            300 if quick else 1000,
        )
    ratio = round(wagate_rate / raw_rate, 3)
    return Result(
        bench="pipeline",
        figure=round(wagate_rate, 1),
        unit=f"messages/s accepted→sent ({n_sessions} sessions, concurrency {CONCURRENCY})",
        baseline=round(raw_rate, 1),
        ratio=ratio,
        target=f"wagate/raw >= {PIPELINE_TARGET}",
        ok=ratio >= PIPELINE_TARGET,
        details={
            "messages": count,
            "warm_up_messages": warm_up,
            "turns": rounds,
            "cpu_ms_per_message": {
                "wagate": round(cpu["w"] * 1000 / count, 1),
                "raw": round(cpu["r"] * 1000 / count, 1),
            },
            "cpu_ms_per_message_by_turn": dict(zip(rounds, where, strict=True)),
            "runner_answers_by_turn": answers,
            "simulator_only_rate": round(sim_rate, 1),
            "billed_operations": cost,
        },
    )


def _wagate_pipeline(s: Stack, key: str, session_ids: list[str], count: int) -> float:
    """Messages/s from the first POST until the runner has recorded every one as sent."""
    sent_before = _sent_count(s.runner_url(0))
    started = _post_all(s, key, session_ids, count)
    while _sent_count(s.runner_url(0)) - sent_before < count:
        if time.monotonic() - started > 600:
            raise TimeoutError("the pipeline did not send every message in 10 min")
        time.sleep(0.05)
    return count / (time.monotonic() - started)
