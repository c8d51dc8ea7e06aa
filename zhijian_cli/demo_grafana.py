"""The demo's Grafana provisioning: written under the demo's data directory for its InfluxDB, with how to
point a Grafana at it or push it to one (Grafana itself is not started: it is not packaged here)."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from dashboards import ProvisioningError, write


def write_demo_provisioning(console: Console, data_dir: Path, influx_url: str, influx_db: str) -> Path | None:
    """Write the provisioning tree to ``data_dir/grafana`` and print how to use it; None if it could not be."""
    directory = (data_dir / "grafana").resolve()
    try:
        write(
            directory,
            dashboards_path=str(directory / "dashboards" / "zhijian"),
            influx_url=influx_url,
            database=influx_db,
        )
    except ProvisioningError as exc:
        console.print(f"[yellow]Grafana provisioning not written: {exc}[/]", highlight=False)
        return None
    console.print(
        f"Grafana dashboards for supervisors (docs/supervisors.md) are provisioned in {directory}: start a Grafana"
        f" 11 with GF_PATHS_PROVISIONING={directory} (run the demo with --keep-serving so InfluxDB stays up), or"
        f" push them to a running one: zhijian dashboards push --grafana http://localhost:3000 --token …"
        f" --influx-url {influx_url} --influx-db {influx_db}",
        highlight=False,
        markup=False,
    )
    return directory
