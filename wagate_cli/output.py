"""How every operator command speaks: rich tables for people, one JSON document for scripts
(`--json`), and errors as one clear line with a non-zero exit code, never a stack trace."""

from __future__ import annotations

import functools
import json
import os
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextvars import ContextVar
from datetime import UTC, datetime, timedelta
from typing import Any, ParamSpec, TypeVar

import typer
from google.auth.exceptions import DefaultCredentialsError
from pydantic import BaseModel, ValidationError
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from wagate.domain import ids
from wagate.errors import NotFound, WagateError

T = TypeVar("T")
R = TypeVar("R")
P = ParamSpec("P")

# Piped output without COLUMNS would be cut to 80 columns; ids alone take 30. --json is the
# machine format, this only keeps tables readable in logs and pagers.
_PIPED_WIDTH = None if sys.stdout.isatty() or "COLUMNS" in os.environ else 160
out = Console(highlight=False, width=_PIPED_WIDTH)
err = Console(stderr=True, highlight=False)

JSON_OPTION = typer.Option(False, "--json", help="Print one JSON document instead of tables")

NO_CREDENTIALS = (
    "no Google credentials: for the local stack `source .stack/env` (written by ./dev up); "
    "for a project `gcloud auth application-default login` and its WAGATE_* settings"
)
EXIT_FAILED = 1  # the command ran and could not do (all of) what was asked


def jsonable(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return None  # sealed secrets and auth state are never printed
    return value


def emit_json(document: Any) -> None:
    sys.stdout.write(json.dumps(jsonable(document), indent=2, sort_keys=False) + "\n")
    sys.stdout.flush()


_json_mode: ContextVar[bool] = ContextVar("wagate_cli_json", default=False)


def wants_json(enabled: bool) -> bool:
    """Remember --json for the error handler, so a failure is JSON too."""
    _json_mode.set(enabled)
    return enabled


def table(
    title: str | None,
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    whole: int = 1,
) -> Table:
    """A table whose first `whole` columns (ids) are never cut or wrapped: operators copy them.
    The other columns wrap rather than lose text."""
    t = Table(title=title, title_justify="left", header_style="bold")
    for i, column in enumerate(columns):
        if i < whole:
            t.add_column(column, no_wrap=True, overflow="ignore", min_width=len(column))
        else:
            t.add_column(column, overflow="fold", min_width=min(len(column), 12))
    for row in rows:
        t.add_row(*(_cell(v) for v in row))
    return t


def fields(title: str, rows: Iterable[Sequence[Any]]) -> Table:
    """Name/value pairs of one thing; values are never cut."""
    t = Table(title=title, title_justify="left", show_header=False)
    t.add_column("field", style="bold", no_wrap=True)
    t.add_column("value", overflow="fold")
    for name, value in rows:
        t.add_row(str(name), _cell(value))
    return t


def _cell(value: Any) -> str:
    return "-" if value is None or value == "" else str(value)


def age(then: datetime | None, now: datetime | None = None) -> str:
    if then is None:
        return "-"
    seconds = ((now or datetime.now(UTC)) - then).total_seconds()
    if seconds < 0:
        return f"in {human_seconds(-seconds)}"
    return f"{human_seconds(seconds)} ago"


def human_seconds(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f}s"
    if seconds < 3600:
        return f"{seconds / 60:.0f}m"
    if seconds < 86400:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"


_RELATIVE = re.compile(r"^(\d+)\s*([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_since(value: str | None) -> datetime | None:
    """`30m`, `2h`, `7d` (ago) or an ISO 8601 time (UTC if it has no zone)."""
    if value is None:
        return None
    text = value.strip()
    match = _RELATIVE.match(text)
    if match:
        amount, unit = int(match.group(1)), match.group(2)
        return datetime.now(UTC) - timedelta(**{_UNITS[unit]: amount})
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(
            "use a duration like 30m, 2h, 7d or an ISO time like 2025-01-31T12:00:00Z"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _report(code: str, message: str, field: str | None) -> None:
    if _json_mode.get():
        emit_json({"error": {"code": code, "message": message, "field": field}})
    where = f" ({field})" if field else ""
    err.print(f"[bold red]error[/]: {message}{where}", markup=True, soft_wrap=True)


def handled(fn: Callable[P, None]) -> Callable[P, None]:
    """Turns every error a command lets out into one line and exit code 1.

    WagateError carries code/message/field; pydantic validation errors name the field; anything
    else is a bug, reported by type without a trace (`WAGATE_CLI_TRACEBACK=1` shows it). Typer's
    own exceptions (exit codes, usage errors) pass through.
    """

    @functools.wraps(fn)
    def run(*args: P.args, **kwargs: P.kwargs) -> None:
        _json_mode.set(False)
        try:
            fn(*args, **kwargs)
        except (typer.Exit, typer.Abort, typer.BadParameter, KeyboardInterrupt):
            raise
        except WagateError as e:
            _report(e.code, e.message, e.field)
            raise typer.Exit(EXIT_FAILED) from None
        except DefaultCredentialsError:
            _report("no_credentials", NO_CREDENTIALS, None)
            raise typer.Exit(EXIT_FAILED) from None
        except ValidationError as e:
            first = e.errors()[0]
            field = ".".join(str(p) for p in first["loc"]) or None
            _report("validation_failed", first["msg"], field)
            raise typer.Exit(EXIT_FAILED) from None
        except Exception as e:
            if type(e).__module__.startswith("typer") or os.environ.get("WAGATE_CLI_TRACEBACK"):
                raise
            _report("internal", f"{type(e).__name__}: {e}", None)
            raise typer.Exit(EXIT_FAILED) from None

    return run


class OperatorTyper(typer.Typer):
    """A Typer whose commands all report errors through `handled`."""

    # Same parameters as Typer.command, passed through unchanged.
    def command(  # type: ignore[override]
        self, *args: Any, **kwargs: Any
    ) -> Callable[[Callable[P, None]], Callable[P, None]]:
        register = super().command(*args, **kwargs)

        def decorator(fn: Callable[P, None]) -> Callable[P, None]:
            register(handled(fn))
            return fn

        return decorator


def check_id(value: str, what: str, field: str) -> str:
    """Refuse what cannot be a wagate id before it reaches the store (NotFound, as the API)."""
    if not ids.is_valid_id(value):
        raise NotFound(f"{what} {value} not found", field=field)
    return value


def in_parallel(
    items: Sequence[T],
    fn: Callable[[T], R],
    *,
    workers: int,
    description: str,
    show_progress: bool = True,
) -> list[R]:
    """fn over items on a thread pool (the work is network round trips), with a progress bar
    on stderr; results in the order of `items`. fn reports its own failures in its result."""
    if not items:
        return []
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with (
        Progress(
            *columns, console=err, disable=not (show_progress and err.is_terminal)
        ) as progress,
        ThreadPoolExecutor(max_workers=workers, thread_name_prefix="cli") as pool,
    ):
        task = progress.add_task(description, total=len(items))
        futures = {pool.submit(fn, item): i for i, item in enumerate(items)}
        results: list[R | None] = [None] * len(items)
        for future in as_completed(futures):
            results[futures[future]] = future.result()
            progress.advance(task)
    return [r for r in results if r is not None]
