"""What the registry and device commands share: connection options, output, friendly errors."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer
from rich.console import Console
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


def remember_connection(ctx: typer.Context, api: str | None, token: str | None) -> None:
    ctx.obj = {"api": api, "token": token}


def client(ctx: typer.Context) -> RegistryClient:
    obj = ctx.obj if isinstance(ctx.obj, dict) else {}  # set by the group's callback, inherited by commands
    return open_client(obj.get("api"), obj.get("token"))


@contextmanager
def friendly_errors() -> Iterator[None]:
    """Our errors become one red line and exit status 1; no traceback for a user's mistake."""
    from device_registry import RegistryError

    try:
        yield
    except (CliError, RegistryError, AgentError, OSError) as exc:
        err_console.print(f"[red]error:[/] {exc}", highlight=False)
        raise typer.Exit(1) from exc


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
        t.add_row(*("" if (v := get(row)) is None else str(v) for _, get in columns))
    console.print(t)
