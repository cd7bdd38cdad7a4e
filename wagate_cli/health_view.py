"""How `wagate health` shows its report (health.py collects it): one screen of rich tables,
the same for a single look, `--watch` and the SVG of docs/img."""

from __future__ import annotations

import io
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.panel import Panel
from rich.text import Text

from wagate_cli.output import age, human_seconds, table

STATUS_STYLE = {"ok": "bold green", "degraded": "bold yellow", "error": "bold red"}


def render(report: dict[str, Any], *, verbose: bool = False, watch: float | None = None) -> Group:
    status = report["status"]
    checked: datetime = report["checked_at"]
    title = Text.assemble(
        ("wagate health  ", "bold"),
        (status.upper(), STATUS_STYLE[status]),
        f"   project {report['project']}   {checked.strftime('%H:%M:%S')} UTC",
        (f"   refresh {watch:g}s, Ctrl-C stops" if watch else "", "dim"),
    )
    parts: list[RenderableType] = [title]

    api = report["api"]
    checks = ", ".join(f"{k} {v}" for k, v in api["checks"].items()) or api.get("error") or "-"
    parts.append(
        table(
            None,
            ["component", "status", "detail"],
            [["api", _styled(api["status"]), f"{api['url']}  {checks}"]],
        )
    )

    rows = []
    for s in report["shards"]:
        runner = s["runner"] or {}
        sessions = runner.get("sessions")
        rss = _dig(runner, "memory", "rss_bytes") or runner.get("memory_rss_bytes")
        p99 = _dig(runner, "store_latency", "firestore", "all", "p99_ms")
        oldest = _dig(runner, "backups", "oldest_age_s")
        uptime = runner.get("uptime_s")
        rows.append(
            [
                str(s["shard"]),
                _styled(s["status"]),
                s["lease"]["holder"] or "-",
                "live" if s["lease"]["live"] else "expired",
                _sessions_cell(sessions) or "none" if sessions is not None else s.get("note"),
                _dig(runner, "queue", "backlog"),
                f"{p99:.0f} ms" if isinstance(p99, int | float) else None,
                f"{rss / 2**20:.0f} MiB" if isinstance(rss, int | float) else None,
                human_seconds(oldest) if isinstance(oldest, int | float) else None,
                human_seconds(uptime) if isinstance(uptime, int | float) else None,
            ]
        )
    capacity = report["store"].get("capacity")
    if capacity:
        loads = ", ".join(
            f"shard {n} {c}/{capacity['sessions_per_shard']}"
            for n, c in enumerate(capacity["live_sessions_by_shard"])
        )
        parts.append(Text(f"capacity: {loads}; room for {capacity['free']} more sessions"))
    parts.append(
        table(
            "runners",
            [
                "shard",
                "status",
                "lease holder",
                "lease",
                "sessions",
                "backlog",
                "store p99",
                "memory",
                "oldest backup",
                "up",
            ],
            rows,
        )
    )

    store = report["store"]
    if store.get("reachable"):
        by_state = _sessions_cell(store.get("sessions_by_state", {})) or "none"
        parts.append(
            Text.assemble(
                ("sessions ", "bold"),
                f"{store['sessions_total']} ({by_state})   ",
                ("dead letters ", "bold"),
                str(store["dead_letters"]),
                "   ",
                ("open alerts ", "bold"),
                str(len(store["open_alerts"])),
            )
        )
        if store["open_alerts"]:
            parts.append(
                table(
                    "open alerts",
                    ["severity", "kind", "subject", "count", "last seen", "message"],
                    [
                        [
                            a["severity"],
                            a["kind"],
                            a["subject"],
                            a["count"],
                            age(a["last_seen"], checked),
                            a["message"],
                        ]
                        for a in store["open_alerts"][:10]
                    ],
                )
            )
        if verbose and store.get("sessions"):
            parts.append(
                table(
                    "sessions",
                    ["session", "tenant", "shard", "state", "desired", "reason", "backup"],
                    [
                        [
                            d["id"],
                            d["tenant_id"],
                            d["shard"],
                            d["state"],
                            d["desired"],
                            d["last_reason"],
                            f"{age(d['last_backup_at'], checked)} ({d['backup_key_id']})"
                            if d["last_backup_at"]
                            else "none",
                        ]
                        for d in store["sessions"]
                    ],
                )
            )
    if report["problems"]:
        parts.append(
            Panel(
                "\n".join(f"• {p}" for p in report["problems"]),
                title="needs attention",
                border_style=STATUS_STYLE[status].split()[-1],
                expand=False,
            )
        )
    return Group(*parts)


def _dig(data: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def _styled(status: str) -> Text:
    return Text(status, style=STATUS_STYLE.get(status, ""))


def _sessions_cell(by_state: dict[str, int]) -> str:
    return ", ".join(f"{state} {count}" for state, count in sorted(by_state.items()))


def save_svg(renderable: RenderableType, path: Path, title: str) -> None:
    recorder = Console(record=True, width=118, file=io.StringIO())
    recorder.print(renderable)
    path.parent.mkdir(parents=True, exist_ok=True)
    recorder.save_svg(str(path), title=title)
