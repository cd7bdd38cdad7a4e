"""`wagate` command line: operator commands (SPEC §7) and `wagate dev up` (the local stack).

Each command group lives in its own module; this one only assembles them. Every command reads
its configuration from the environment (WAGATE_* settings, emulator hosts), so the same
commands run against the local stack (`source .stack/env` after `./dev up`) and a real project
(Application Default Credentials). See docs/cli.md.
"""

from __future__ import annotations

from wagate_cli import alerts, backup, dead_letters, keys, sessions, tenants
from wagate_cli.cleanup import cleanup
from wagate_cli.dev import dev
from wagate_cli.health import health
from wagate_cli.output import OperatorTyper

app = OperatorTyper(
    help="wagate: operate a WhatsApp gateway on Google Cloud.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
app.command("health")(health)
app.add_typer(sessions.app, name="sessions")
app.add_typer(dead_letters.app, name="dead-letters")
app.add_typer(backup.app, name="backup")
app.add_typer(keys.app, name="keys")
app.add_typer(alerts.app, name="alerts")
app.add_typer(tenants.app, name="tenants")
app.command("cleanup")(cleanup)
app.add_typer(dev, name="dev")


if __name__ == "__main__":
    app()
