"""`wagate alerts list|resolve`: the health alerts the runners and the sweeper raise."""

from __future__ import annotations

import re
from typing import Any

import typer

from wagate.contracts import AlertDoc
from wagate.errors import Conflict, NotFound
from wagate.ports import Where
from wagate_cli.context import connect
from wagate_cli.output import JSON_OPTION, OperatorTyper, age, emit_json, out, table, wants_json

ALERT_ID = re.compile(r"^[a-z0-9_]{1,64}-[0-9a-f]{16}$")  # services.alerts.alert_id

app = OperatorTyper(help="Health alerts: list them, resolve them.")


def alert_summary(a: AlertDoc) -> dict[str, Any]:
    return {
        "id": a.id,
        "kind": a.kind,
        "severity": a.severity,
        "subject": a.subject,
        "message": a.message,
        "count": a.count,
        "first_seen": a.first_seen,
        "last_seen": a.last_seen,
        "resolved_at": a.resolved_at,
    }


@app.command("list")
def list_alerts(
    show_all: bool = typer.Option(False, "--all", help="Resolved alerts too"),
    limit: int = typer.Option(200, "--limit", min=1, max=5000, help="At most this many"),
    as_json: bool = JSON_OPTION,
) -> None:
    """Open alerts (or all with --all), most recent first."""
    wants_json(as_json)
    op = connect()
    where = [] if show_all else [Where("resolved_at", "==", None)]
    alerts = op.alert_docs.query(where, limit=limit)
    alerts.sort(key=lambda a: a.last_seen, reverse=True)
    if as_json:
        emit_json({"items": [alert_summary(a) for a in alerts], "count": len(alerts)})
        return
    columns = ["alert", "severity", "kind", "subject", "count", "last seen", "message"]
    if show_all:
        columns.append("resolved")
    out.print(
        table(
            f"{len(alerts)} {'' if show_all else 'open '}alert(s)",
            columns,
            [
                [
                    a.id,
                    a.severity,
                    a.kind,
                    a.subject,
                    a.count,
                    age(a.last_seen),
                    a.message,
                    *([age(a.resolved_at) if a.resolved_at else None] if show_all else []),
                ]
                for a in alerts
            ],
        )
    )


@app.command("resolve")
def resolve(
    alert_id: str = typer.Argument(..., help="Alert id (see `alerts list`)"),
    as_json: bool = JSON_OPTION,
) -> None:
    """Mark an alert resolved (raising it again reopens it)."""
    wants_json(as_json)
    op = connect()
    alert = op.alert_docs.get(alert_id) if ALERT_ID.match(alert_id) else None
    if alert is None:
        raise NotFound(f"alert {alert_id} not found", field="alert_id")
    if not op.alerts.resolve(alert.kind, alert.subject):
        raise Conflict(f"alert {alert_id} is already resolved", field="alert_id")
    resolved = op.alert_docs.get(alert_id)
    if as_json:
        emit_json(alert_summary(resolved or alert))
        return
    out.print(f"{alert_id} resolved ({alert.kind} {alert.subject})")
