"""`wagate cleanup [--dry-run]`: run the maintenance pass now (wagate.services.maintenance), the
same one the sweeper runs every hour: prune inbound messages and delivered message bodies past
retention, age the sessions' key material, count superseded backup versions and remove orphan
backups.
"""

from __future__ import annotations

import typer

from wagate.services.maintenance import Maintenance
from wagate.wiring import retention_of
from wagate_cli.context import connect
from wagate_cli.output import JSON_OPTION, emit_json, err, fields, out, wants_json


def cleanup(
    dry_run: bool = typer.Option(False, "--dry-run", help="Only count what would be pruned"),
    as_json: bool = JSON_OPTION,
) -> None:
    """Prune by retention and age key material now (the sweeper does it hourly)."""
    wants_json(as_json)
    op = connect()
    report = Maintenance(
        op.store, op.backup_bucket, op.clock, retention_of(op.settings), alerts=op.alerts
    ).run(dry_run=dry_run)
    if as_json:
        emit_json(report)
    else:
        verb = "would prune" if dry_run else "pruned"
        # Every count the report carries, by its field name: the pass grows new ones.
        rows = [
            [name.replace("_", " "), value]
            for name, value in report.model_dump().items()
            if isinstance(value, int) and not isinstance(value, bool)
        ]
        rows.append(["unfinished passes", ", ".join(report.incomplete) or None])
        out.print(fields(f"cleanup ({verb})", rows))
        for error in report.errors:
            err.print(f"[red]error[/]: {error}")
    if report.errors:
        raise typer.Exit(1)
