"""``zhijian dashboards …``: write the Grafana provisioning files, or push them to a running Grafana."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

app = typer.Typer(
    rich_markup_mode="markdown",
    no_args_is_help=True,
    help="Grafana dashboards for supervisors, as code: six dashboards (city overview, districts and markets, "
    "scale and stall, food-safety map, planting bases, rapid tests), alert rules and DingTalk/WeCom contact "
    "points. `write DIR` writes Grafana provisioning files (point Grafana's `paths.provisioning` at DIR); "
    "`push` uploads the same to a running Grafana over its HTTP API. See docs/supervisors.md.",
)
console = Console(soft_wrap=True)


@app.command("write")
def write_cmd(
    directory: Annotated[Path, typer.Argument(help="Provisioning directory to write (created).")],
    dashboards_path: Annotated[
        str | None,
        typer.Option(
            help="Where Grafana will find the dashboard JSON (the provider's path); default: DIR/dashboards/zhijian "
            "as an absolute path."
        ),
    ] = None,
    influx_url: Annotated[
        str, typer.Option(help="InfluxDB 1.x URL for the datasource ($VAR: read by Grafana from its environment).")
    ] = "$ZHIJIAN_INFLUX_URL",
    influx_db: Annotated[str, typer.Option(help="InfluxDB database (on 2.x: the DBRP-mapped name).")] = (
        "$ZHIJIAN_INFLUX_DB"
    ),
) -> None:
    """Write datasources (InfluxDB 1.x and 2.x), the dashboard provider, the dashboards' JSON and the alerting
    files under DIR, ready for Grafana's `paths.provisioning` (or `GF_PATHS_PROVISIONING`)."""
    from dashboards import ProvisioningError, write

    path = dashboards_path or str((directory / "dashboards" / "zhijian").resolve())
    try:
        written = write(directory, dashboards_path=path, influx_url=influx_url, database=influx_db)
    except ProvisioningError as exc:
        console.print(f"[red]{exc}[/]", highlight=False)
        raise typer.Exit(2) from exc
    console.print(f"wrote {len(written)} files under {directory}", highlight=False)
    console.print(
        f"Point Grafana at it: GF_PATHS_PROVISIONING={directory.resolve()} ZHIJIAN_INFLUX_URL=http://… "
        "ZHIJIAN_INFLUX_DB=zhijian grafana server",
        highlight=False,
    )


@app.command("push")
def push_cmd(
    grafana: Annotated[str, typer.Option("--grafana", help="Grafana's URL, e.g. http://localhost:3000.")],
    token: Annotated[
        str | None,
        typer.Option(
            envvar="ZHIJIAN_GRAFANA_TOKEN",
            help="A service-account token (Editor or Admin); or put user:password in the URL.",
        ),
    ] = None,
    influx_url: Annotated[str, typer.Option(help="InfluxDB 1.x URL, as Grafana's server reaches it.")] = (
        "http://127.0.0.1:8086"
    ),
    influx_db: Annotated[str, typer.Option(help="InfluxDB database.")] = "zhijian",
    influx2_url: Annotated[str, typer.Option(help="InfluxDB 2.x URL (v1-compatible API), if any.")] = "",
    influx2_token: Annotated[
        str, typer.Option(envvar="ZHIJIAN_INFLUX2_TOKEN", help="InfluxDB 2.x token with read access.")
    ] = "",
) -> None:
    """Upload datasources, the folder, dashboards, contact points, alert rules and the notification policy
    to a running Grafana with grafana-client (idempotent: run it again after an upgrade)."""
    from dashboards import PushError
    from dashboards.push import PushTarget, push

    target = PushTarget(
        grafana_url=grafana,
        token=token,
        influx_url=influx_url,
        influx_db=influx_db,
        influx2_url=influx2_url,
        influx2_token=influx2_token,
    )
    try:
        report = push(target, say=lambda m: console.print(m, highlight=False))
    except PushError as exc:
        console.print(f"[red]{exc}[/]", highlight=False)
        raise typer.Exit(2) from exc
    console.print(f"pushed to {grafana}: {len(report.created)} created, {len(report.updated)} updated")
