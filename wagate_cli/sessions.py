"""`wagate sessions list|show|recover|stop`: every tenant's sessions, as an operator sees them.

recover and stop go through the same path as the API: the desired state is written, then a
control task asks the runner that owns the session's shard to act on its socket.
"""

from __future__ import annotations

from typing import Any

import typer

from wagate.contracts import SessionDoc
from wagate.domain import ids
from wagate.domain.sessions import DesiredState, SessionState
from wagate.errors import NotFound, ValidationFailed
from wagate.ports import Where
from wagate.services.backups import SessionBackups
from wagate_cli.alerts import alert_summary
from wagate_cli.context import Operator, connect
from wagate_cli.output import (
    JSON_OPTION,
    OperatorTyper,
    age,
    emit_json,
    fields,
    out,
    table,
    wants_json,
)

app = OperatorTyper(help="List, inspect, recover and stop sessions (WhatsApp accounts).")

STATES = [s.value for s in SessionState]


def session_summary(doc: SessionDoc) -> dict[str, Any]:
    return {
        "id": doc.id,
        "tenant_id": doc.tenant_id,
        "name": doc.name,
        "shard": doc.shard,
        "state": doc.state.value,
        "desired": doc.desired.value,
        "jid": doc.jid,
        "last_reason": doc.last_reason,
        "reconnect_attempts": doc.reconnect_attempts,
        "last_backup": doc.last_backup.model_dump(mode="json") if doc.last_backup else None,
        "created_at": doc.created_at,
        "updated_at": doc.updated_at,
    }


def find_session(op: Operator, session_id: str) -> SessionDoc:
    doc = op.session_docs.get(session_id) if ids.is_valid_id(session_id) else None
    if doc is None:
        raise NotFound(f"session {session_id} not found", field="session_id")
    return doc


@app.command("list")
def list_sessions(
    tenant: str | None = typer.Option(
        None, "--tenant", metavar="TENANT_ID", help="Only this tenant's sessions"
    ),
    state: str | None = typer.Option(
        None, "--state", metavar="STATE", help=f"Only sessions in this state ({', '.join(STATES)})"
    ),
    shard: int | None = typer.Option(None, "--shard", min=0, help="Only this shard's sessions"),
    limit: int = typer.Option(100, "--limit", min=1, max=10_000, help="At most this many"),
    as_json: bool = JSON_OPTION,
) -> None:
    """Sessions, oldest first by id, filtered by tenant, state and shard."""
    wants_json(as_json)
    if state is not None and state not in STATES:
        raise ValidationFailed(
            f"unknown state {state!r}; one of {', '.join(STATES)}", field="state"
        )
    where: list[Where] = []
    if tenant:
        where.append(Where("tenant_id", "==", tenant))
    if state:
        where.append(Where("state", "==", state))
    if shard is not None:
        where.append(Where("shard", "==", shard))
    op = connect()
    docs = op.session_docs.query(where, order_by="id", limit=limit)
    if as_json:
        emit_json({"items": [session_summary(d) for d in docs], "count": len(docs)})
        return
    out.print(
        table(
            f"{len(docs)} session(s)",
            ["session", "state", "desired", "shard", "name", "last backup", "jid", "tenant"],
            [
                [
                    d.id,
                    d.state.value,
                    d.desired.value,
                    d.shard,
                    d.name,
                    age(d.last_backup.at) if d.last_backup else None,
                    d.jid,
                    d.tenant_id,
                ]
                for d in docs
            ],
        )
    )


@app.command("show")
def show_session(
    session_id: str = typer.Argument(..., help="Session id (ses_…)"),
    as_json: bool = JSON_OPTION,
) -> None:
    """One session: its document, its live backup and its open alerts."""
    wants_json(as_json)
    op = connect()
    doc = find_session(op, session_id)
    detail = session_summary(doc)
    detail["pairing_phone"] = doc.pairing_phone
    detail["has_qr"] = doc.qr is not None
    detail["counters"] = doc.counters
    try:
        info = op.backup_bucket.head(SessionBackups.object_name(doc.tenant_id, doc.id))
        detail["backup_object"] = {
            "name": info.name,
            "generation": info.generation,
            "size": info.size,
            "updated": info.updated,
            "key_id": info.metadata.get("key_id"),
        }
    except NotFound:
        detail["backup_object"] = None
    alerts = op.alert_docs.query([Where("subject", "==", doc.id)], limit=50)
    detail["alerts"] = [alert_summary(a) for a in alerts]
    if as_json:
        emit_json(detail)
        return
    backup = detail["backup_object"]
    rows: list[list[Any]] = [
        ["tenant", doc.tenant_id],
        ["name", doc.name],
        ["shard", doc.shard],
        ["state / desired", f"{doc.state.value} / {doc.desired.value}"],
        ["jid", doc.jid],
        ["last reason", doc.last_reason],
        ["reconnect attempts", doc.reconnect_attempts],
        ["qr pending", "yes" if doc.qr else "no"],
        [
            "last backup",
            f"{age(doc.last_backup.at)} gen {doc.last_backup.generation} "
            f"key {doc.last_backup.key_id}"
            if doc.last_backup
            else None,
        ],
        [
            "backup object",
            f"gen {backup['generation']}, {backup['size']} bytes, key {backup['key_id']}"
            if backup
            else "none",
        ],
        ["created", doc.created_at.isoformat()],
        ["updated", f"{doc.updated_at.isoformat()} ({age(doc.updated_at)})"],
    ]
    out.print(fields(f"session {doc.id}", rows))
    if detail["alerts"]:
        out.print(
            table(
                "alerts",
                ["alert", "kind", "severity", "count", "resolved", "message"],
                [
                    [a["id"], a["kind"], a["severity"], a["count"], a["resolved_at"], a["message"]]
                    for a in detail["alerts"]
                ],
            )
        )


@app.command("recover")
def recover_session(
    session_id: str = typer.Argument(..., help="Session id (ses_…)"),
    as_json: bool = JSON_OPTION,
) -> None:
    """Force a reconnect (marks the session to run again if it was stopped)."""
    wants_json(as_json)
    op = connect()
    doc = find_session(op, session_id)
    tenant = op.tenants.get(doc.tenant_id)
    updated = op.sessions.recover(tenant, doc.id)
    _done(
        as_json, updated, "recover", "recover requested: the runner of shard {shard} reconnects it"
    )


@app.command("stop")
def stop_session(
    session_id: str = typer.Argument(..., help="Session id (ses_…)"),
    as_json: bool = JSON_OPTION,
) -> None:
    """Stop a session: close its socket and keep it closed; the backup is kept
    (`recover` starts it again without a new QR)."""
    wants_json(as_json)
    op = connect()
    doc = find_session(op, session_id)
    now = op.clock.now()
    updated = op.session_docs.update(
        doc.id,
        lambda d: d.model_copy(update={"desired": DesiredState.STOPPED, "updated_at": now}),
    )
    op.sessions.control(updated, "stop")
    _done(as_json, updated, "stop", "stop requested: the runner of shard {shard} closes it")


def _done(as_json: bool, doc: SessionDoc, action: str, message: str) -> None:
    if as_json:
        emit_json({"session": session_summary(doc), "requested": action})
    else:
        out.print(f"{doc.id}: " + message.format(shard=doc.shard))
