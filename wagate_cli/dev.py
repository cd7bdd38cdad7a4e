"""`wagate dev up`: the whole local stack on loopback until Ctrl-C; a crashed runner or
function is restarted with backoff (devstack/restarts.py), as the cloud would.

It also writes the stack's environment to `.stack/env` (mode 0600, removed on exit) so the
operator commands can be pointed at it from another terminal: `source .stack/env`. The values
are generated per run for loopback services; they are printed masked and never logged.
"""

from __future__ import annotations

import os
import shlex
import signal
import time
from pathlib import Path

import typer
from rich.console import Console

from devstack.restarts import CrashRestarter
from devstack.stack import Stack, StackConfig

dev = typer.Typer(help="The local stack (emulators, simulator, runner, functions).")
console = Console(highlight=False)


def write_env_file(path: Path, env: dict[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("# wagate local stack: `source` this file, then run `wagate …`\n")
        for key, value in env.items():
            f.write(f"export {key}={shlex.quote(value)}\n")


@dev.command("up")
def dev_up(
    shards: int = typer.Option(1, min=1, max=8, help="Runner shards to start"),
) -> None:
    """Start the whole local system on loopback and keep it running until Ctrl-C."""
    stack = Stack(StackConfig(shards=shards))
    env_file = stack.config.root / "env"
    stopping = False

    def _stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, _stop)
    try:
        with console.status("starting the local stack…"):
            stack.start_all()
        write_env_file(env_file, stack.env)
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
        console.print(
            f"  operator CLI from another shell: [bold]source {env_file}[/] "
            "then e.g. [bold]wagate health --watch 2[/]"
        )
        console.print(
            "  a crashed runner or function is restarted with backoff, as the cloud would; "
            "the stack stops only if an emulator or the simulator dies"
        )
        restarter = CrashRestarter(stack.services, lambda line: console.print(f"[yellow]{line}[/]"))
        while not stopping:
            time.sleep(0.5)
            dead = restarter.check()
            if dead:
                console.print(f"[red]stopped unexpectedly: {', '.join(dead)}[/]")
                break
    except KeyboardInterrupt:
        pass
    finally:
        env_file.unlink(missing_ok=True)
        with console.status("stopping…"):
            stack.stop()
