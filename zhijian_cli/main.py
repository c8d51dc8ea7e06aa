"""The ``zhijian`` command: run the demo, check device profiles, run the ingest."""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from device_profiles import ProfileError, builtin_profiles, load_profile

from .agent_cmd import app as agent_app
from .anti_cheat_cmd import app as anti_cheat_app
from .case_cmd import app as case_app
from .dashboards_cmd import app as dashboards_app
from .dead_letters_cmd import app as dead_letters_app
from .device_cmd import app as device_app
from .registry_cmd import app as registry_app
from .servers import ServerError
from .sim_cmd import app as sim_app

if TYPE_CHECKING:  # imported when a command runs: keeps `zhijian --help` quick
    from cloud_ingest import IngestSettings

app = typer.Typer(
    rich_markup_mode="markdown",
    help="Zhijian (智监): telemetry for food-safety market supervision. Smart scales, planting-base sensors and "
    "rapid-test vehicles → MQTT → ingest with anti-cheating rules → InfluxDB.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
profiles_app = typer.Typer(
    rich_markup_mode="markdown", help="List and check device profiles (the YAML files describing device models)."
)
ingest_app = typer.Typer(rich_markup_mode="markdown", help="Run the cloud ingest (MQTT → InfluxDB).")
app.add_typer(profiles_app, name="profiles")
app.add_typer(agent_app, name="agent")
app.add_typer(anti_cheat_app, name="anti-cheat")
app.add_typer(ingest_app, name="ingest")
ingest_app.add_typer(dead_letters_app, name="dead-letters")
app.add_typer(registry_app, name="registry")
app.add_typer(device_app, name="device")
app.add_typer(sim_app, name="sim")
app.add_typer(dashboards_app, name="dashboards")
app.add_typer(case_app, name="case")
console = Console(soft_wrap=True)  # messages are not re-wrapped (logs, scripts); tables keep the width


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"zhijian {version('zhijian')}")
        raise typer.Exit


@app.callback()
def _main(
    _version: Annotated[
        bool | None,
        typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit."),
    ] = None,
) -> None:
    """Zhijian (智监): telemetry for food-safety market supervision."""


def _logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def _stop_like_ctrl_c(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


@app.command()
def demo(
    duration: Annotated[float, typer.Option(help="Seconds to run the market before stopping.")] = 60.0,
    scales: Annotated[int, typer.Option(min=1, max=500, help="Number of simulated scales.")] = 20,
    cheaters: Annotated[int, typer.Option(min=0, help="How many of them cheat (one method after another).")] = 8,
    rate: Annotated[float, typer.Option(min=0.1, help="Sales per second across the market.")] = 20.0,
    data_dir: Annotated[Path, typer.Option(help="Where servers and agents keep state; wiped at start.")] = Path(
        ".zhijian-demo"
    ),
    mqtt_host: Annotated[str | None, typer.Option(help="Use this broker instead of starting one.")] = None,
    mqtt_port: Annotated[int, typer.Option(help="Port of --mqtt-host.")] = 1883,
    influx_url: Annotated[str | None, typer.Option(help="Use this InfluxDB (1.x API) instead of starting one.")] = None,
    influx_db: Annotated[
        str, typer.Option(help="InfluxDB database to write to (the demo's own: never the production `zhijian`).")
    ] = "zhijian_demo",
    export: Annotated[
        Path | None,
        typer.Option(help="Write the run's scale data here, as input for `zhijian anti-cheat score`."),
    ] = None,
    field_devices: Annotated[
        bool, typer.Option(help="Also run a planting base (Modbus sensors) and a rapid-test vehicle (GPS, analyzer).")
    ] = True,
    keep_serving: Annotated[
        bool, typer.Option(help="After the market closes, keep broker and InfluxDB up for queries until Ctrl-C.")
    ] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log details.")] = False,
) -> None:
    """Run the whole system locally: registry, broker, InfluxDB, ingest and a market of simulated scales.

    Every simulated device is registered, verified and provisioned in a registry, and the broker admits
    only those devices; some scales are cheating. Shows records flowing and flags raised, then how to query the
    data."""
    from .demo import DemoOptions, run_demo

    _logging(verbose)
    opts = DemoOptions(
        duration_s=duration,
        scales=scales,
        cheaters=min(cheaters, scales),
        sales_per_s=rate,
        data_dir=data_dir,
        mqtt_host=mqtt_host,
        mqtt_port=mqtt_port,
        influx_url=influx_url,
        influx_db=influx_db,
        keep_serving=keep_serving,
        field_devices=field_devices,
        export_dir=export,
    )
    try:
        signal.signal(signal.SIGTERM, _stop_like_ctrl_c)  # `kill`, systemd, docker stop: clean up as for Ctrl-C
        stored = run_demo(opts, console)
    except ServerError as exc:
        console.print(f"[red]Cannot start the local stack:[/] {escape(str(exc))}")
        raise typer.Exit(2) from exc
    if stored == 0:
        console.print("[red]No sale reached InfluxDB.[/]")
        raise typer.Exit(1)


@profiles_app.command("list")
def profiles_list() -> None:
    """List the device profiles shipped with Zhijian."""
    table = Table("id", "kind", "protocol", "transport", "records", "model")
    for p in builtin_profiles().values():
        table.add_row(p.id, p.kind, p.protocol, p.transport, ", ".join(p.records), p.model)
    console.print(table)


@profiles_app.command("check")
def profiles_check(
    files: Annotated[list[Path], typer.Argument(help="Profile YAML files to validate.")],
) -> None:
    """Validate profile files; errors name the file and the field."""
    failed = 0
    for path in files:
        try:
            profile = load_profile(path)
        except ProfileError as exc:
            failed += 1
            console.print(f"[red]✗[/] {escape(str(exc))}", highlight=False)
        else:
            console.print(f"[green]✓[/] {path}: {profile.id} ({profile.kind}, {profile.protocol})")
    if failed:
        raise typer.Exit(1)


def _log_to_stderr(verbose: bool) -> None:
    from .log_setup import configure_logging

    configure_logging(verbose)


def _ingest_settings(config: Path | None) -> IngestSettings:
    """The ingest's settings (environment over ``config``), the devices snapshot beside the spool unless set;
    a bad file or value is one red line and exit status 2."""
    from cloud_ingest import IngestSettings

    if config is not None and not config.is_file():
        console.print(f"[red]{config}: no such settings file[/]")
        raise typer.Exit(2)
    try:
        settings = IngestSettings(_env_file=config) if config else IngestSettings()
    except ValueError as exc:
        console.print(f"[red]settings: {escape(str(exc))}[/]", highlight=False)
        raise typer.Exit(2) from exc
    if "devices_snapshot_path" not in settings.model_fields_set:
        snapshot = settings.spool_path.with_name("devices_snapshot.npz")
        settings = settings.model_copy(update={"devices_snapshot_path": snapshot})
    return settings


@ingest_app.command("run")
def ingest_run(
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="A settings file of ZHIJIAN_*=value lines (.env format).")
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log details.")] = False,
) -> None:
    """Run one ingest worker until SIGTERM or Ctrl-C. Configure with ZHIJIAN_* environment variables
    (ZHIJIAN_MQTT_HOST, ZHIJIAN_INFLUX_URL, ZHIJIAN_DEVICES_FILE, …; see docs/operations.md) or a settings
    file; the environment wins over the file. With ZHIJIAN_REGISTRY_URL the devices come from the registry
    (keys derived with its key secret: ZHIJIAN_KEY_SECRET_FILE), re-read when it changes. With
    ZHIJIAN_TRANSPORT=nats it takes its share of the partitions of the NATS JetStream ingest stream
    (ZHIJIAN_NATS_URL) that `zhijian ingest route` fills (docs/scale_out.md)."""

    from .ingest_devices import build_worker, ingest_devices
    from .ingest_start import bind_metrics, create_database, influx_client
    from .registry_client import CliError

    _log_to_stderr(verbose)
    settings = _ingest_settings(config)
    if settings.transport == "nats":
        from .ingest_nats import run_partitioned

        try:
            run_partitioned(settings, config, say=console.print)
        except CliError as exc:
            console.print(f"[red]{escape(str(exc))}[/]", highlight=False)
            raise typer.Exit(2) from exc
        return
    try:
        devices, live = ingest_devices(settings, config)
    except CliError as exc:
        console.print(f"[red]devices: {escape(str(exc))}[/]", highlight=False)
        raise typer.Exit(2) from exc
    influx = influx_client(settings)
    try:
        worker = build_worker(settings, influx, devices, live)
    except CliError as exc:
        console.print(f"[red]{escape(str(exc))}[/]", highlight=False)
        raise typer.Exit(2) from exc
    try:  # in this order: see zhijian_cli/ingest_start.py
        metrics = bind_metrics(worker, settings)
        create_database(influx, settings)
    except CliError as exc:
        console.print(f"[red]{escape(str(exc))}[/]", highlight=False)
        raise typer.Exit(2) from exc
    done = threading.Event()
    # before the worker starts: a SIGTERM the moment it is connected must stop it cleanly, not kill it
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    worker.start()
    metrics.start()
    console.print(f"ingest running; metrics on http://{settings.metrics_host}:{metrics.port}/metrics")
    with contextlib.suppress(KeyboardInterrupt):
        done.wait()
    metrics.close()
    worker.stop()
    influx.close()


@ingest_app.command("route")
def ingest_route(
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="A settings file of ZHIJIAN_*=value lines (.env format).")
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log details.")] = False,
) -> None:
    """Route device traffic from Mosquitto into the NATS JetStream ingest stream, partitioned by market, for
    workers run with ZHIJIAN_TRANSPORT=nats (docs/scale_out.md). Same ZHIJIAN_* settings as `ingest run`
    (ZHIJIAN_MQTT_*, ZHIJIAN_NATS_URL, ZHIJIAN_NATS_PARTITIONS, the devices file or registry for markets)."""
    from .ingest_nats import run_router
    from .registry_client import CliError

    _log_to_stderr(verbose)
    settings = _ingest_settings(config)
    try:
        run_router(settings, config, say=console.print)
    except CliError as exc:
        console.print(f"[red]{escape(str(exc))}[/]", highlight=False)
        raise typer.Exit(2) from exc
