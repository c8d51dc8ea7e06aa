"""What the registry and device commands share: connection options, output, friendly errors."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.measure import Measurement
from rich.table import Table

from edge_agent.errors import AgentError

from .registry_client import CliError, RegistryClient, open_client

console = Console(soft_wrap=True)  # messages are not re-wrapped (logs, scripts); tables keep the width
err_console = Console(stderr=True, soft_wrap=True)  # one error, one line (logs, scripts)

ApiOption = Annotated[
    str | None,
    typer.Option(
        "--api",
        envvar="ZHIJIAN_API_URL",
        help="Registry API URL (e.g. https://registry.example.gov.cn). Without it: the local registry database "
        "(ZHIJIAN_REGISTRY_URL, default sqlite:///registry.sqlite).",
    ),
]
TokenOption = Annotated[str | None, typer.Option("--token", envvar="ZHIJIAN_API_TOKEN", help="API token for --api.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON (for scripts) instead of a table.")]
YesOption = Annotated[
    bool, typer.Option("--yes", "-y", help="Do not ask for confirmation (for scripts; needed without a terminal).")
]


def remember_connection(ctx: typer.Context, api: str | None, token: str | None) -> None:
    ctx.obj = {"api": api, "token": token}


def client(ctx: typer.Context, api: str | None = None, token: str | None = None) -> RegistryClient:
    """The registry the command talks to: ``--api``/``--token`` given to the command itself
    (``zhijian device list --api …``), else to its group (``zhijian device --api … list``), else the
    environment (both options read ZHIJIAN_API_URL and ZHIJIAN_API_TOKEN), else the local database."""
    obj = ctx.obj if isinstance(ctx.obj, dict) else {}  # set by the group's callback, inherited by commands
    return open_client(api or obj.get("api"), token or obj.get("token"))


def confirm(question: str) -> None:
    """Go on if the user answers y at a terminal; else stop with status 1. Without a terminal (a script, a
    pipe) it refuses rather than read an answer nobody typed: the caller asks only without ``--yes``."""
    if not sys.stdin.isatty():
        raise CliError(f"{question.rstrip('?')}: not confirmed (no terminal to ask at); add --yes to go ahead")
    if not typer.confirm(question, default=False, err=True):
        err_console.print("nothing changed", highlight=False)
        raise typer.Exit(1)


@contextmanager
def friendly_errors() -> Iterator[None]:
    """Our errors become one red line and exit status 1; no traceback for a user's mistake."""
    from device_registry import RegistryError

    try:
        yield
    except (CliError, RegistryError, AgentError, OSError) as exc:
        # escaped: messages quote patterns and input ("[a-z0-9]…"), which Rich would take for markup
        err_console.print(f"[red]error:[/] {escape(str(exc))}", highlight=False)
        raise typer.Exit(1) from exc


# control characters and those that reorder or hide text (bidi overrides, zero-width): shown as escapes
_INVISIBLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]")


def shown(value: object) -> str:
    """Text someone else wrote (a device's sample name, a supervisor's note), ready for Rich: markup
    escaped, and control and direction characters written as escapes (``\\u202e``) so nothing is hidden or reordered
    on the terminal."""
    return escape(_INVISIBLE.sub(lambda m: f"\\u{ord(m.group()):04x}", str(value)))


def emit(doc: Any, as_json: bool, render: Callable[[Any], None]) -> None:
    if as_json:
        typer.echo(json.dumps(doc, ensure_ascii=False, indent=2))
    else:
        render(doc)


def table(rows: list[dict[str, Any]], columns: list[tuple[str, Callable[[dict[str, Any]], Any]]], title: str) -> None:
    t = Table(title=title)
    for name, _ in columns:
        t.add_column(name)
    for row in rows:
        t.add_row(*("" if (v := get(row)) is None else shown(v) for _, get in columns))
    if console.is_terminal:
        console.print(t)
        return
    # into a pipe or a file Rich assumes 80 columns and cuts ids to "scale-00…": print every cell whole
    wide = Measurement.get(console, console.options.update(width=10_000), t).maximum
    Console(file=console.file, width=max(console.width, wide)).print(t)
