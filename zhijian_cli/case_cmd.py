"""``zhijian case …``: what a market or district supervisor does with the cases in their scope."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from .cli_common import (
    ApiOption,
    JsonOption,
    TokenOption,
    client,
    console,
    emit,
    friendly_errors,
    remember_connection,
    shown,
)
from .cli_common import table as print_table

app = typer.Typer(
    rich_markup_mode="markdown",
    help="Cases: the alerts (planting-base sensors, positive rapid tests) and flagged scales supervisors close "
    "in a loop (闭环). A case goes **open → acknowledged → assigned → closed** with an outcome "
    "(inspected_confirmed, rectified, false_alarm); a planting-base alert closes only after the base has "
    "acknowledged its rectification. The ingest opens cases; supervisors act on those in their district or "
    "market (their token's scope). Works on the local registry, or remotely with --api and --token.",
    no_args_is_help=True,
)


@app.callback()
def _connection(ctx: typer.Context, api: ApiOption = None, token: TokenOption = None) -> None:
    remember_connection(ctx, api, token)


def _where(c: dict[str, Any]) -> str:
    return f"{c['place_kind']} {c['place']} ({c['district_id']})"


def _show(c: dict[str, Any]) -> None:
    """A case as text; every value from elsewhere (a device's sample name, a supervisor's note) goes through
    :func:`shown`, so it prints as written and never as markup or terminal control."""
    base = ""
    if c["needs_base_ack"]:
        when = c["base_ack_at"]
        base = f"acknowledged by {shown(c['base_ack_by'])} at {shown(when)}" if when else "[yellow]not yet[/]"
    outcome = f" ({shown(c['outcome'])})" if c["outcome"] else ""
    lines = [
        f"[bold]case {c['id']}[/]  {shown(c['state'].upper())}{outcome}"
        f"  {shown(c['source'])} {shown(c['rule'])}, severity {shown(c['severity'])}",
        f"  what        {shown(c['summary'])}",
        f"  where       {shown(_where(c))}, device {shown(c['device_id'])}",
        f"  seen        {c['occurrences']}× from {shown(c['first_ts'])} to {shown(c['last_ts'])}",
        f"  assigned to {shown(c['assignee'] or '-')}",
    ]
    if c["needs_base_ack"]:
        lines.append(f"  base        rectification {base}")
    if c["closed_at"]:
        lines.append(f"  closed      {shown(c['closed_at'])} by {shown(c['closed_by'])}")
    evidence = ", ".join(f"{k}={v}" for k, v in c["evidence"].items())
    lines.append(f"  evidence    {shown(evidence[:300])}")
    for h in c.get("history", []):
        detail = ", ".join(f"{k}={v}" for k, v in h["detail"].items())
        step = f"{h['action']:<11} → {h['state']:<12} {h['actor']}"
        lines.append(f"    {shown(h['at'][:19])}  {shown(step)}  {shown(detail[:120])}")
    console.print("\n".join(lines), highlight=False)


@app.command("list")
def list_cases(
    ctx: typer.Context,
    state: Annotated[
        str | None, typer.Option(help="open, acknowledged, assigned or closed (default: every state).")
    ] = None,
    district: Annotated[str | None, typer.Option(help="Only this district's cases.")] = None,
    market: Annotated[str | None, typer.Option(help="Only this market's cases.")] = None,
    source: Annotated[str | None, typer.Option(help="flag (scales) or alert (bases, rapid tests).")] = None,
    device: Annotated[str | None, typer.Option(help="Only cases about this device.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=500, help="Newest cases to show.")] = 50,
    as_json: JsonOption = False,
    api: ApiOption = None,
    token: TokenOption = None,
) -> None:
    """Cases in your scope, newest first."""
    with friendly_errors():
        page = client(ctx, api, token).call(
            "GET", "/v1/cases", state=state, district=district, market=market, source=source, device=device, limit=limit
        )
    emit(
        page["items"],
        as_json,
        lambda rows: print_table(
            rows,
            [
                ("id", lambda c: c["id"]),
                ("state", lambda c: c["state"] + (f" ({c['outcome']})" if c["outcome"] else "")),
                ("what", lambda c: f"{c['source']} {c['rule']}"),
                ("severity", lambda c: c["severity"]),
                ("where", _where),
                ("seen", lambda c: c["occurrences"]),
                ("last", lambda c: c["last_ts"][:19]),
                ("assigned to", lambda c: c["assignee"]),
            ],
            f"cases ({len(rows)} of {page['total']})",
        ),
    )


CaseId = Annotated[int, typer.Argument(min=1, help="The case number (`zhijian case list`).")]
Note = Annotated[str | None, typer.Option(help="A remark kept in the case's history.")]


def _step(
    ctx: typer.Context,
    case_id: int,
    step: str,
    body: dict[str, Any],
    as_json: bool,
    api: str | None = None,
    token: str | None = None,
) -> None:
    with friendly_errors():
        out = client(ctx, api, token).call(
            "POST", f"/v1/cases/{case_id}/{step}", {k: v for k, v in body.items() if v is not None}
        )
    emit(out, as_json, _show)


@app.command("show")
def show(
    ctx: typer.Context, case_id: CaseId, as_json: JsonOption = False, api: ApiOption = None, token: TokenOption = None
) -> None:
    """A case with its evidence and its history: opened, occurrences, every step and by whom."""
    with friendly_errors():
        out = client(ctx, api, token).call("GET", f"/v1/cases/{case_id}")
    emit(out, as_json, _show)


@app.command("ack")
def ack(
    ctx: typer.Context,
    case_id: CaseId,
    note: Note = None,
    as_json: JsonOption = False,
    api: ApiOption = None,
    token: TokenOption = None,
) -> None:
    """Acknowledge a case: you have seen it (open → acknowledged)."""
    _step(ctx, case_id, "acknowledge", {"note": note}, as_json, api, token)


@app.command("assign")
def assign(
    ctx: typer.Context,
    case_id: CaseId,
    to: Annotated[str, typer.Option("--to", help="The inspector (执法人员) or team sent to the place.")],
    note: Note = None,
    as_json: JsonOption = False,
    api: ApiOption = None,
    token: TokenOption = None,
) -> None:
    """Send an inspector (acknowledged → assigned; again to send another)."""
    _step(ctx, case_id, "assign", {"to": to, "note": note}, as_json, api, token)


@app.command("close")
def close(
    ctx: typer.Context,
    case_id: CaseId,
    outcome: Annotated[
        str,
        typer.Option(
            help="inspected_confirmed (the finding holds), rectified (put right) or false_alarm (nothing wrong)."
        ),
    ],
    note: Note = None,
    as_json: JsonOption = False,
    api: ApiOption = None,
    token: TokenOption = None,
) -> None:
    """Close a case with its outcome (acknowledged or assigned → closed). A planting-base alert closes only
    after the base has acknowledged its rectification (`zhijian case show` says whether it has)."""
    _step(ctx, case_id, "close", {"outcome": outcome, "note": note}, as_json, api, token)


@app.command("note")
def note(
    ctx: typer.Context,
    case_id: CaseId,
    text: Annotated[str, typer.Argument(help="The remark (3 to 500 characters).")],
    as_json: JsonOption = False,
    api: ApiOption = None,
    token: TokenOption = None,
) -> None:
    """Add a remark to a case's history; its state does not change."""
    _step(ctx, case_id, "notes", {"text": text}, as_json, api, token)
