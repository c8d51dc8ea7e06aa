"""``zhijian agent run`` and ``zhijian agent status``: the edge agent on a device's gateway."""

from __future__ import annotations

import contextlib
import json
import signal
import threading
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from edge_agent.bundle_file import build_agent, load_bundle
from edge_agent.errors import ConfigError, DeviceError

from .log_setup import configure_logging

app = typer.Typer(
    rich_markup_mode="markdown", help="Run the edge agent of a device, or read its live status.", no_args_is_help=True
)
console = Console(soft_wrap=True)  # messages are not re-wrapped (logs, scripts); tables keep the width
ConfigOption = Annotated[Path, typer.Option("--config", "-c", help="The device's provisioning bundle (YAML).")]


@app.command("run")
def run(
    config: ConfigOption,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log details (raw frames at DEBUG).")] = False,
) -> None:
    """Read the bundle's devices into the durable outbox and publish them until SIGTERM or Ctrl-C.

    Records already accepted survive any stop, even SIGKILL or a power cut: they wait in the outbox
    under the bundle's state_dir and are sent when the agent runs again."""
    configure_logging(verbose)  # the HTTP client's request lines held at WARNING
    try:
        bundle = load_bundle(config)
        agent = build_agent(bundle, bundle_dir=config.parent)
    except ConfigError as exc:
        console.print(f"[red]{escape(str(exc))}[/]", highlight=False)
        raise typer.Exit(2) from exc
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    agent.start()
    with contextlib.suppress(KeyboardInterrupt):
        done.wait()
    agent.stop(drain_s=5)


@app.command("status")
def status(
    config: ConfigOption,
    as_json: Annotated[bool, typer.Option("--json", help="Print the status document as JSON.")] = False,
) -> None:
    """Show the live status the running agent keeps in its state directory (exit 1 if it is not running)."""
    try:
        bundle = load_bundle(config)
    except ConfigError as exc:
        console.print(f"[red]{escape(str(exc))}[/]", highlight=False)
        raise typer.Exit(2) from exc
    try:
        doc = json.loads(bundle.status_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        console.print(f"No status at {bundle.status_path}: the agent has not run here yet.")
        raise typer.Exit(1) from None
    age_s = time.time() - doc.get("ts", 0) / 1000
    running = doc.get("state") == "running" and age_s < 5
    if as_json:
        print(json.dumps({**doc, "age_s": round(age_s, 1), "running": running}, ensure_ascii=False))
    else:
        table = Table(title=f"Agent {doc.get('device', bundle.device_id)}", show_header=False)
        for key in (
            "state",
            "connected",
            "boot",
            "delivery",
            "outbox_depth",
            "in_flight_records",
            "oldest_record_age_s",
            "outbox_refused",
            "published_records",
            "acknowledged_records",
            "refused_publishes",
            "taken",
            "last_error",
        ):
            table.add_row(key, str(doc.get(key, "")))
        dead = doc.get("dead_letters", {})
        if dead:
            table.add_row("dead letters", f"{dead.get('written', 0)} written, {dead.get('kept_bytes', 0)} bytes kept")
        for name, state in doc.get("sources", {}).items():
            table.add_row(f"source {name}", state)
        table.add_row("updated", f"{age_s:.1f} s ago")
        console.print(table)
    if not running:
        raise typer.Exit(1)


@app.command("dead-letters")
def dead_letters(
    config: ConfigOption,
    limit: Annotated[int, typer.Option(help="Show at most this many, newest first.")] = 50,
    raw: Annotated[bool, typer.Option("--raw", help="Print each letter's bytes as hex, not only their start.")] = False,
) -> None:
    """Bytes a device sent that could not be attributed to any record, kept on the gateway with the reason.

    Everything that can be attributed to a record is uploaded (as the record, or as a raw_evidence record
    with the exact bytes); these are the rest, bounded by a byte quota (the oldest go first)."""
    from edge_agent.outbox import Outbox

    try:
        bundle = load_bundle(config)
    except ConfigError as exc:
        console.print(f"[red]{escape(str(exc))}[/]", highlight=False)
        raise typer.Exit(2) from exc
    path = bundle.state_dir / "outbox.sqlite"
    if not path.exists():
        console.print(f"No outbox at {path}: the agent has not run here yet.")
        raise typer.Exit(1)
    outbox = Outbox(path)
    try:
        letters = outbox.dead_letters()
        kept = outbox.dead_letter_bytes
    finally:
        outbox.close()
    table = Table(title=f"Dead letters of {bundle.device_id}: {len(letters)} kept, {kept} bytes")
    table.add_column("reason")
    table.add_column("bytes", justify="right")
    table.add_column("data")
    for reason, data in letters[::-1][:limit]:
        table.add_row(Text(reason), str(len(data)), Text(data.hex() if raw else repr(data[:60])))  # never markup
    console.print(table)


@app.command("receive-bundle")
def receive_bundle_cmd(
    port: Annotated[str, typer.Option(help="The serial port the technician's laptop is connected to.")],
    out: Annotated[Path, typer.Option(help="Where to store the bundle (mode 600).")] = Path("/etc/zhijian/bundle.txt"),
    baudrate: Annotated[int, typer.Option(help="Serial speed.")] = 115_200,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the bundle.")] = 600.0,
) -> None:
    """Wait for a bundle sent with `zhijian device provision --write-serial`, store it, and confirm with
    the key fingerprint; then start the agent with `zhijian agent run -c <out>`."""
    from edge_agent.provisioning_line import receive_bundle

    try:
        bundle = receive_bundle(port, out, baudrate=baudrate, timeout_s=timeout)
    except (ConfigError, DeviceError, OSError) as exc:
        console.print(f"[red]{escape(str(exc))}[/]")
        raise typer.Exit(1) from exc
    console.print(f"stored the bundle of {bundle.device_id} in {out}")
