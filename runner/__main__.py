"""Composition root of the runner: wires settings, adapters, engine and services, serves HTTP,
keeps the lease, and shuts down within Cloud Run's 10 s on SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import socket
from pathlib import Path

from aiohttp import web

from runner.app import RunnerApp
from runner.context import ShardContext
from runner.group_commit import GroupClaim, GroupCommit
from runner.inbound_media import InboundMediaStore
from runner.io import Offload
from runner.journal import JOURNAL_FILE, DurableAlerts, DurableWrites, Journal
from runner.lease import LeaseKeeper
from runner.monitor import RunnerMonitor
from runner.order_gate import OrderGate
from runner.pacing import Pacer
from runner.sending import SendHandler
from runner.sent_index import SentIndex
from runner.shard import Shard
from wagate import logs, wiring
from wagate.adapters import firestore as fs
from wagate.adapters.egress import EgressGuard
from wagate.adapters.guard import DependencyGuard
from wagate.clock import SystemClock
from wagate.config import Settings
from wagate.contracts import ShardLease
from wagate.ports import CallObserver, WhatsAppEngine
from wagate.services.alerts import QueuedAlertNotifier
from wagate.services.backups import SessionBackups
from wagate.services.directory import SessionDirectory
from wagate.services.leases import Leases
from wagate.services.media import Media
from wagate.services.monitoring import CallLatency
from wagate.services.outbox import Outbox

log = logs.get_logger("wagate.runner")
SHUTDOWN_BUDGET_S = 8.0  # Cloud Run allows 10 s after SIGTERM


def make_engine(
    settings: Settings, store: fs.FirestoreStore, buckets: wiring.Buckets
) -> WhatsAppEngine:
    if settings.engine == "simulator":
        from runner.engines.simulated import SimulatedEngine

        # Link previews are fetched through the egress guard (docs/messaging.md).
        return SimulatedEngine(
            settings.simulator_url, egress_guard=EgressGuard.from_settings(settings)
        )
    from runner.engines.outgoing import BucketMedia
    from wagate.contracts import SessionDoc

    # The real engines send uploaded media themselves, so they read the media bucket (through
    # the runner's own clients and breakers).
    media = BucketMedia(buckets.media(), store.collection("sessions", SessionDoc))
    if settings.engine == "baileys":
        from runner.engines.baileys import BaileysEngine

        # Auth state lives in the workers' memory only; the supervisor backs it up encrypted.
        return BaileysEngine(
            settings.baileys_url,
            sessions_per_worker=settings.baileys_sessions_per_worker,
            media_url=settings.baileys_media_url,
            media=media,
            egress_guard=EgressGuard.from_settings(settings),  # media URLs, link previews
        )
    from runner.engines.whatsmeow import WhatsmeowEngine

    # The device stores (plaintext keys) stay on local disk, removed at close in `cloud` mode.
    return WhatsmeowEngine(
        Path(settings.state_dir) / "whatsmeow",
        media=media,
        keep_store=settings.persistence != "cloud",
        log_level="DEBUG" if settings.log_level.upper() == "DEBUG" else "WARNING",
        proxy=settings.whatsmeow_proxy,
        egress_guard=EgressGuard.from_settings(settings),  # media URLs, link previews
    )


async def serve(settings: Settings) -> None:
    keyring = wiring.keyring(settings)  # first: nothing works without it
    clock = SystemClock()
    latency = CallLatency()  # store latency percentiles (/health, alerts) and call metrics
    observer: CallObserver = latency
    # The store's breaker retries at every lease renewal: after an outage the lease must be
    # renewed again before its TTL runs out, not a whole default reset timeout later.
    store = wiring.firestore_store(
        settings,
        DependencyGuard("firestore", observer=observer, reset_timeout_s=settings.lease_renew_s),
    )
    queue = wiring.task_queue(settings, DependencyGuard("tasks", observer=observer))
    buckets = wiring.Buckets(settings, DependencyGuard("storage", observer=observer))
    blobs = buckets.backups() if settings.persistence != "local" else None
    state_dir = Path(settings.state_dir)
    io = Offload()
    # Writes the store cannot take during an outage wait here, on local disk (docs/outage.md).
    durable = DurableWrites(Journal(state_dir / JOURNAL_FILE), io, store)
    ctx = ShardContext(
        settings=settings,
        store=store,
        queue=queue,
        engine=make_engine(settings, store, buckets),
        backups=SessionBackups(blobs, keyring, settings.persistence, state_dir),
        # Alert notices go through the webhook queue to the sweeper's /alerts/deliver.
        alerts=DurableAlerts(
            durable,
            store,
            clock,
            QueuedAlertNotifier(queue, settings.queue_prefix, settings.sweeper_url),
        ),
        clock=clock,
        io=io,
        state_dir=state_dir,
        # Received files go to the media bucket, announced with signed URLs.
        media=InboundMediaStore(
            Media(buckets.media()),
            buckets.media_signer(),
            io,
            max_bytes=settings.inbound_media_max_bytes,
            attempts=settings.inbound_media_attempts,
            url_ttl_s=settings.media_url_ttl_s,
        ),
        durable_writes=durable,
    )
    writes = GroupCommit(store, ctx.io)
    index = SentIndex()
    gate = OrderGate(store, ctx.io)
    gate.index = index  # messages sent here are not pending, whatever the store says yet
    # The takeover nudge gives a pending send whose task is gone a task again, as the api
    # creates it (wagate/services/outbox.py).
    outbox = Outbox(store, queue, clock, wiring.routing(settings), SessionDirectory(store))
    shard = Shard(ctx, writes, index, outbox, gate)
    # Containers often share a hostname and all run as PID 1: a random part keeps two
    # instances from ever looking like the same lease holder.
    holder = settings.instance_id or (
        f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(4)}"
    )
    lease = LeaseKeeper(
        Leases(store.collection("shards", ShardLease), clock),
        ctx.io,
        settings.shard_id,
        holder,
        settings.lease_ttl_s,
        settings.lease_renew_s,
        shard.on_lease_won,
        shard.on_lease_lost,
    )
    sender = SendHandler(ctx, Pacer(), writes, index, GroupClaim(store, ctx.io), gate)
    monitor = RunnerMonitor(
        ctx,
        shard,
        lease,
        latency=latency,
        breakers=[store.guard, queue.guard, *([buckets.guard] if buckets.in_use else [])],
        blobs=blobs,
    )
    app = RunnerApp(shard, lease, sender, monitor)
    runner = web.AppRunner(app.build(), access_log=None, handle_signals=False)
    await runner.setup()
    port = int(os.environ.get("PORT", "8090"))
    await web.TCPSite(runner, host=os.environ.get("HOST", "0.0.0.0"), port=port).start()
    log.info("runner listening", port=port, shard=settings.shard_id, holder=holder)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    background = [
        asyncio.create_task(lease.run(), name="lease"),
        asyncio.create_task(shard.backup_loop(), name="backups"),
        asyncio.create_task(monitor.run(), name="monitor"),
    ]

    def died(task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            # Loops catch what they expect; anything else must not leave a runner that is up
            # but does nothing: stop, and let the platform start a fresh instance.
            log.critical(
                "background loop died; stopping", loop=task.get_name(), exc_info=task.exception()
            )
            stop.set()

    for task in background:
        task.add_done_callback(died)
    durable.start()  # replays what a previous process left in the journal, then keeps up
    await stop.wait()
    log.info("SIGTERM: draining", shard=settings.shard_id)
    try:
        async with asyncio.timeout(SHUTDOWN_BUDGET_S):
            await shard.drain()  # 503 to new tasks, flush backups, close sockets
            background[0].cancel()
            await lease.release()
    except TimeoutError:
        log.warning("shutdown budget exceeded; exiting anyway")
    for task in background:
        task.cancel()
    await sender.close()
    with contextlib.suppress(Exception):
        await runner.cleanup()
    with contextlib.suppress(Exception):
        await ctx.engine.aclose()
    await durable.stop()  # what is still journaled is replayed by the next process
    durable.journal.close()
    ctx.io.shutdown()
    log.info("runner stopped", shard=settings.shard_id)


def main() -> None:
    settings = Settings()
    logs.configure(settings.log_format, settings.log_level)
    try:
        asyncio.run(serve(settings))
    except wiring.MissingSetting as e:
        raise SystemExit(str(e)) from None


if __name__ == "__main__":
    main()
