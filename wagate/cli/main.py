"""`wagate` command line: operator commands and `wagate dev up` (the local stack)."""

from __future__ import annotations

import signal
import time

import typer
from rich.console import Console

from wagate.devstack.stack import Stack, StackConfig

app = typer.Typer(help="wagate: operate a WhatsApp gateway on Google Cloud.", no_args_is_help=True)
dev = typer.Typer(help="The local stack (emulators, simulator, runner, functions).")
app.add_typer(dev, name="dev")
console = Console()


@dev.command("up")
def dev_up(
    shards: int = typer.Option(1, min=1, max=8, help="Runner shards to start"),
) -> None:
    """Start the whole local system on loopback and keep it running until Ctrl-C."""
    stack = Stack(StackConfig(shards=shards))
    stopping = False

    def _stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, _stop)
    try:
        with console.status("starting the local stack…"):
            stack.start_all()
        console.print("[bold green]wagate local stack is up[/] (Ctrl-C stops everything)")
        for name, url in stack.url.items():
            console.print(f"  {name:10} {url}")
        for shard in range(shards):
            console.print(f"  runner-{shard:<3} {stack.runner_url(shard)}")
        console.print(f"  logs       {stack.logs}")
        console.print("  environment for clients:")
        for key, value in stack.env.items():
            shown = "<generated>" if "KEY" in key or "SECRET" in key else value
            console.print(f"    export {key}={shown}")
        while not stopping:
            time.sleep(0.5)
            dead = [s.name for s in stack.services.values() if not s.alive]
            if dead:
                console.print(f"[red]stopped unexpectedly: {', '.join(dead)}[/]")
                break
    except KeyboardInterrupt:
        pass
    finally:
        with console.status("stopping…"):
            stack.stop()


if __name__ == "__main__":
    app()
