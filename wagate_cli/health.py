"""`wagate health`: one view of the whole gateway, and an exit code for scripts and probes.

It asks every runner for `/health?detailed=true`, the api for `/v1/health`, and Firestore for
what the runners cannot tell from outside: each shard's lease, sessions by state, dead letters
and open alerts. In the cloud the runners accept internal traffic only, so from an operator's
machine a shard is judged by its lease (a live lease means its runner renews it every few
seconds); inside the network, or locally, the runner answers for itself.

Status: ok (exit 0), degraded (exit 1: something needs attention but messages flow),
error (exit 2: a shard has no runner, the api or Firestore is down).
"""

from __future__ import annotations

import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.live import Live

from wagate.domain.sessions import SessionState
from wagate.errors import WagateError
from wagate.ports import Where
from wagate_cli.alerts import alert_summary
from wagate_cli.context import Operator, connect
from wagate_cli.health_view import render, save_svg
from wagate_cli.output import JSON_OPTION, emit_json, jsonable, out, wants_json

PROBE_TIMEOUT_S = 5.0
STATUS_EXIT = {"ok": 0, "degraded": 1, "error": 2}
VERBOSE_SESSIONS = 200


def _get_json(url: str) -> dict[str, Any]:
    """GET a health endpoint: {reachable, http_status, body | error}."""
    try:
        response = httpx.get(url, timeout=PROBE_TIMEOUT_S)
    except httpx.HTTPError as e:
        return {"reachable": False, "error": f"{type(e).__name__}: {e}".rstrip(": ")}
    try:
        body = response.json()
    except ValueError:
        body = None
    result: dict[str, Any] = {"reachable": True, "http_status": response.status_code}
    if isinstance(body, dict):
        result["body"] = body
    else:
        result["error"] = f"HTTP {response.status_code}, not JSON"
    return result


def _runner_urls(op: Operator) -> list[str | None]:
    urls = [u.strip().rstrip("/") for u in op.settings.runner_urls.split(",") if u.strip()]
    count = max(op.settings.shard_count, len(urls))
    return [urls[i] if i < len(urls) else None for i in range(count)]


def _shard_view(
    shard: int, url: str | None, probe: dict[str, Any] | None, lease: Any, now: datetime
) -> dict[str, Any]:
    lease_live = bool(lease and lease.holder and lease.expires_at and lease.expires_at > now)
    view: dict[str, Any] = {
        "shard": shard,
        "url": url,
        "reachable": bool(probe and probe.get("reachable")),
        "lease": {
            "holder": lease.holder if lease else None,
            "token": lease.token if lease else None,
            "expires_in_s": (
                round((lease.expires_at - now).total_seconds(), 1)
                if lease and lease.expires_at
                else None
            ),
            "live": lease_live,
        },
        "runner": (probe or {}).get("body"),
        "error": (probe or {}).get("error"),
    }
    runner = view["runner"] or {}
    problems: list[str] = []
    if url is None:
        problems.append(f"shard {shard}: WAGATE_RUNNER_URLS has no URL for it")
    if view["reachable"] and runner:
        if runner.get("lease_held"):
            reported = runner.get("status", "ok")
            status = reported if reported in STATUS_EXIT else "degraded"
            reasons = runner.get("reasons") or ([] if status == "ok" else [f"status {reported}"])
            problems += [f"shard {shard}: {reason}" for reason in reasons]
        elif lease_live:
            status = "degraded"
            problems.append(
                f"shard {shard}: the runner at {url} does not hold the lease "
                f"({view['lease']['holder']} does)"
            )
        else:
            status = "error"
            problems.append(f"shard {shard}: no runner holds the lease")
    elif lease_live:
        # Unreachable from here (internal ingress in the cloud) but renewing its lease.
        status = "ok"
        view["note"] = "runner not reachable from here; its lease is live"
    else:
        status = "error"
        why = view["error"] or "no answer"
        problems.append(f"shard {shard}: runner unreachable ({why}) and no live lease")
    view["status"] = status
    view["problems"] = problems
    return view


def collect(op: Operator, *, verbose: bool = False) -> dict[str, Any]:
    """Everything `health` shows, as one JSON-ready document (status decided here)."""
    now = datetime.now(UTC)
    urls = _runner_urls(op)
    problems: list[str] = []
    with ThreadPoolExecutor(max_workers=min(16, len(urls) + 1)) as pool:
        api_future = pool.submit(_get_json, op.settings.api_url.rstrip("/") + "/v1/health")
        query = "detailed=true" + ("&per_session=true" if verbose else "")
        probes = list(pool.map(lambda u: _get_json(f"{u}/health?{query}") if u else None, urls))
        api = api_future.result()
    report: dict[str, Any] = {"checked_at": now, "project": op.settings.project_id}

    api_view: dict[str, Any] = {
        "url": op.settings.api_url,
        "reachable": api.get("reachable", False),
        "http_status": api.get("http_status"),
        "checks": (api.get("body") or {}).get("checks", {}),
        "error": api.get("error"),
    }
    api_view["status"] = "ok" if api.get("http_status") == 200 else "error"
    if api_view["status"] != "ok":
        detail = api.get("error") or json.dumps(api_view["checks"]) or f"HTTP {api['http_status']}"
        problems.append(f"api: {detail}")
    report["api"] = api_view

    store: dict[str, Any] = {"reachable": True}
    leases: dict[str, Any] = {}
    try:
        leases = {
            doc.id: doc for doc in op.shard_leases.get_many([str(i) for i in range(len(urls))])
        }
        by_state = {
            state.value: op.session_docs.count([Where("state", "==", state.value)])
            for state in SessionState
        }
        store["sessions_by_state"] = {k: v for k, v in by_state.items() if v}
        store["sessions_total"] = sum(by_state.values())
        store["dead_letters"] = op.message_docs.count([Where("status", "==", "dead")])
        per_shard = op.settings.sessions_per_shard
        loads = op.sessions.shard_loads()
        store["capacity"] = {
            "sessions_per_shard": per_shard,
            "live_sessions_by_shard": loads,
            "free": sum(max(0, per_shard - n) for n in loads),
        }
        if store["capacity"]["free"] == 0:
            problems.append(
                f"every shard is full ({per_shard} sessions each): new sessions are refused "
                "(add shards or raise WAGATE_SESSIONS_PER_SHARD)"
            )
        alerts = op.alert_docs.query([Where("resolved_at", "==", None)], limit=200)
        alerts.sort(key=lambda a: a.last_seen, reverse=True)
        store["open_alerts"] = [alert_summary(a) for a in alerts]
        if verbose:
            store["sessions"] = _session_details(op, now)
    except WagateError as e:
        store = {"reachable": False, "error": e.message}
        problems.append(f"firestore: {e.message}")
    report["store"] = store

    shards = [
        _shard_view(i, url, probe, leases.get(str(i)), now)
        for i, (url, probe) in enumerate(zip(urls, probes, strict=True))
    ]
    for shard in shards:
        problems += shard["problems"]
    report["shards"] = shards

    critical = [a for a in store.get("open_alerts", []) if a["severity"] == "critical"]
    if critical:
        problems.append(f"{len(critical)} open critical alert(s)")
    if (
        api_view["status"] == "error"
        or not store["reachable"]
        or any(s["status"] == "error" for s in shards)
    ):
        status = "error"
    elif (
        critical
        or any(s["status"] == "degraded" for s in shards)
        or store.get("capacity", {}).get("free", 1) == 0
    ):
        status = "degraded"
    else:
        status = "ok"
    report["status"] = status
    report["problems"] = problems
    return report


def _session_details(op: Operator, now: datetime) -> list[dict[str, Any]]:
    docs = op.session_docs.query(order_by="id", limit=VERBOSE_SESSIONS)
    order = {s.value: i for i, s in enumerate(SessionState)}
    # The ones that need a look first: anything not connected, then by id.
    docs.sort(key=lambda d: (d.state == SessionState.CONNECTED, order[d.state.value], d.id))
    return [
        {
            "id": d.id,
            "tenant_id": d.tenant_id,
            "shard": d.shard,
            "state": d.state.value,
            "desired": d.desired.value,
            "last_reason": d.last_reason,
            "reconnect_attempts": d.reconnect_attempts,
            "last_backup_at": d.last_backup.at if d.last_backup else None,
            "backup_key_id": d.last_backup.key_id if d.last_backup else None,
            "updated_at": d.updated_at,
        }
        for d in docs
    ]


# ---------------------------------------------------------------- command


def health(
    watch: float | None = typer.Option(
        None, "--watch", min=0.5, metavar="SECONDS", help="Refresh every SECONDS until Ctrl-C"
    ),
    as_json: bool = JSON_OPTION,
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Add per-session detail"),
    save_svg_to: Annotated[
        Path | None,
        typer.Option("--save-svg", metavar="FILE", help="Also save the (last) view as an SVG"),
    ] = None,
) -> None:
    """Health of runners, api, store and alerts. Exit code: 0 ok, 1 degraded, 2 error."""
    wants_json(as_json)
    op = connect()
    if watch is None:
        report = collect(op, verbose=verbose)
        if as_json:
            emit_json(report)
        else:
            out.print(render(report, verbose=verbose))
        if save_svg_to:
            save_svg(render(report, verbose=verbose), save_svg_to, "wagate health")
        raise typer.Exit(STATUS_EXIT[report["status"]])
    code = _watch(op, watch, verbose=verbose, as_json=as_json, svg=save_svg_to)
    raise typer.Exit(code)


def _watch(op: Operator, every: float, *, verbose: bool, as_json: bool, svg: Path | None) -> int:
    report: dict[str, Any] | None = None
    try:
        if as_json:  # one JSON document per line per refresh
            while True:
                report = collect(op, verbose=verbose)
                sys.stdout.write(json.dumps(jsonable(report)) + "\n")
                sys.stdout.flush()
                time.sleep(every)
        report = collect(op, verbose=verbose)
        with Live(
            render(report, verbose=verbose, watch=every),
            console=out,
            auto_refresh=False,
            transient=False,
        ) as live:
            while True:
                if svg is not None:
                    save_svg(render(report, verbose=verbose, watch=every), svg, _svg_title(every))
                time.sleep(every)
                report = collect(op, verbose=verbose)
                live.update(render(report, verbose=verbose, watch=every), refresh=True)
    except KeyboardInterrupt:
        pass
    return STATUS_EXIT[report["status"]] if report else 2


def _svg_title(every: float) -> str:
    return f"wagate health --watch {every:g}"
