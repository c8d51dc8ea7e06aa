"""``zhijian demo``: the whole system on one machine, with a simulated market.

Starts (unless told to use existing ones) a private Mosquitto and influxd under the data directory,
an ingest worker, a market of simulated MT-SICS scales on pseudo-terminals (some cheating), and one edge
agent per scale; shows live progress, then stops everything it started.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import shutil
import time
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from rich.columns import Columns
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from anti_cheat import Engine
from cloud_ingest import DeviceFile, InfluxClient, IngestSettings, IngestWorker, Pipeline, write_device_file
from cloud_ingest.pipeline import DeadLetters
from cloud_ingest.sensor_alerts import AlertBook
from cloud_ingest.sequences import SequenceBook
from cloud_ingest.spool import Spool
from dashboards import QUERIES
from device_profiles import builtin
from edge_agent import Agent, BrokerConfig, MtSicsSource
from firmware_sim import Market

from .demo_field import BASE_ID, VEHICLE_ID, start_base, start_vehicle
from .servers import InfluxServer, MosquittoServer

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class DemoOptions:
    duration_s: float = 60.0
    scales: int = 20
    cheaters: int = 7
    sales_per_s: float = 20.0
    data_dir: Path = Path(".zhijian-demo")
    mqtt_host: str | None = None
    mqtt_port: int = 1883
    influx_url: str | None = None
    influx_db: str = "zhijian"
    seed: int = 2026
    keep_serving: bool = False
    field_devices: bool = True


def run_demo(opts: DemoOptions, console: Console) -> int:
    """Run the demo; returns the number of sales stored in InfluxDB."""
    if opts.data_dir.exists():
        shutil.rmtree(opts.data_dir)  # each demo starts fresh: simulated scales restart their counters
    opts.data_dir.mkdir(parents=True)
    with ExitStack() as stack:
        mqtt_host, mqtt_port = opts.mqtt_host or "127.0.0.1", opts.mqtt_port
        if opts.mqtt_host is None:
            broker = stack.enter_context(MosquittoServer(opts.data_dir / "mosquitto"))
            mqtt_port = broker.port
        influx_url = opts.influx_url
        if influx_url is None:
            influx_url = stack.enter_context(InfluxServer(opts.data_dir / "influxdb")).url
        console.print(f"[bold]Broker[/] mqtt://{mqtt_host}:{mqtt_port}   [bold]InfluxDB[/] {influx_url}")

        influx = InfluxClient(influx_url, opts.influx_db)
        stack.callback(influx.close)
        influx.create_database()

        profile = builtin("zj-pcs-30")
        market = Market(profile, n_scales=opts.scales, cheaters=opts.cheaters, seed=opts.seed).start()
        stack.callback(market.close)
        everyone = [*(s.device_id for s in market.stalls), market.fair.device_id, BASE_ID, VEHICLE_ID]
        keys = {d: secrets.token_bytes(32) for d in everyone}
        devices_path = opts.data_dir / "devices.json"
        write_device_file(
            devices_path,
            {
                s.device_id: {
                    "key": keys[s.device_id].hex(),
                    "profile": profile.id,
                    "scale": market.verification_facts(s),
                    "tags": {"district": "futian", "market": "futian-no1", "stall": f"A-{n + 1:03d}"},
                }
                for n, s in enumerate(market.stalls)
            }
            | {
                market.fair.device_id: {
                    "key": keys[market.fair.device_id].hex(),
                    "tags": {"district": "futian", "market": "futian-no1"},
                },
                BASE_ID: {"key": keys[BASE_ID].hex(), "tags": {"district": "guangming", "base": "gm-veg-01"}},
                VEHICLE_ID: {"key": keys[VEHICLE_ID].hex(), "tags": {"district": "futian", "vehicle": "rt-van-01"}},
            },
            market.commodity_medians(),
        )
        devices = DeviceFile.load(devices_path)
        settings = IngestSettings(
            mqtt_host=mqtt_host,
            mqtt_port=mqtt_port,
            influx_url=influx_url,
            influx_db=opts.influx_db,
            mqtt_client_id="zhijian-demo-ingest",
            batch_max_ms=100,
        )
        pipeline = Pipeline(
            key_for=devices.key_for,
            engine=Engine(devices.facts),
            store=influx,
            dead_letters=DeadLetters(opts.data_dir / "dead_letters.sqlite"),
            spool=Spool(opts.data_dir / "spool.sqlite"),
            sequences=SequenceBook(opts.data_dir / "sequences.sqlite"),
            revoked=devices.is_revoked,
            tags_for=devices.tags_for,
            alert_book=AlertBook(opts.data_dir / "alerts.sqlite"),
        )
        worker = IngestWorker(settings, pipeline).start()
        stack.callback(worker.stop, end_session=True)
        to_broker = BrokerConfig(host=mqtt_host, port=mqtt_port)
        agents = _start_agents(stack, market, keys, opts.data_dir, to_broker)
        if opts.field_devices:
            stalls = [s.device_id for s in market.stalls]
            agents.append(start_base(stack, opts.data_dir, keys[BASE_ID], to_broker, interval_s=2.0))
            sample_every_s = max(3.0, opts.duration_s / 6)
            agents.append(
                start_vehicle(
                    stack, opts.data_dir, keys[VEHICLE_ID], to_broker, stalls=stalls, sample_every_s=sample_every_s
                )
            )

        console.print(
            f"Market of {opts.scales} scales ({opts.cheaters} cheating), about {opts.sales_per_s:g} sales/s, "
            f"for {opts.duration_s:g} s. Ctrl-C stops early."
        )
        _run_market(opts, console, market, agents, pipeline)
        stored = _summary(console, market, influx, influx_url, opts.influx_db)
        if opts.keep_serving:
            for agent in agents:  # the market is closed; keep only broker, ingest and InfluxDB
                agent.stop()
            console.print(f"Broker and InfluxDB stay up for queries ({influx_url}); Ctrl-C stops them.")
            with contextlib.suppress(KeyboardInterrupt):
                while True:
                    time.sleep(1)
    console.print("All demo processes stopped.")
    return stored


def _run_market(opts: DemoOptions, console: Console, market: Market, agents: list[Agent], pipeline: Pipeline) -> None:
    """Make sales at the chosen rate for the chosen time, showing progress; then let the last ones land."""
    started = time.monotonic()
    interval = 1.0 / opts.sales_per_s
    next_sale = started
    try:
        with Live(console=console, refresh_per_second=4) as live:
            while (now := time.monotonic()) - started < opts.duration_s:
                while next_sale <= now:
                    market.tick()
                    next_sale += interval
                live.update(_progress(market, agents, pipeline, now - started))
                time.sleep(0.05)
            # let the last sales reach InfluxDB before the summary
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and _in_flight(market, agents, pipeline):
                live.update(_progress(market, agents, pipeline, time.monotonic() - started))
                time.sleep(0.1)
    except KeyboardInterrupt:
        console.print("[yellow]Interrupted; stopping.[/]")


def _start_agents(
    stack: ExitStack, market: Market, keys: dict[str, bytes], data_dir: Path, broker: BrokerConfig
) -> list[Agent]:
    """One edge agent per stall, reading the stall's scale over its pty; each stopped by ``stack``."""
    agents = []
    for stall in [*market.stalls, market.fair]:
        agent = Agent(
            device_id=stall.device_id,
            key=keys[stall.device_id],
            sources=[MtSicsSource(stall.firmware.profile, stall.server.port)],
            outbox_path=data_dir / f"outbox-{stall.device_id}.sqlite",
            broker=broker,
        )
        agents.append(agent.start())
        stack.callback(agent.stop, drain_s=3)
    return agents


def _in_flight(market: Market, agents: list[Agent], pipeline: Pipeline) -> bool:
    del agents
    return pipeline.records_by_type["sale"] < sum(s.sales for s in market.stalls)


def _progress(market: Market, agents: list[Agent], pipeline: Pipeline, elapsed: float) -> Group:
    made = sum(s.sales for s in market.stalls)
    table = Table(
        title=f"Zhijian demo — {elapsed:5.1f} s",
        caption="sales made · taken into outboxes · waiting in outboxes · MQTT messages received · "
        "records accepted · points stored · sales flagged · payloads rejected",
    )
    for col in ("sales", "taken", "outbox", "messages", "records", "points", "flagged", "rejected"):
        table.add_column(col, justify="right")
    table.add_row(
        str(made),
        str(sum(a.taken for a in agents)),
        str(sum(a.outbox.depth for a in agents)),
        str(pipeline.received),
        str(pipeline.accepted_records),
        str(pipeline.stored_points),
        str(pipeline.flagged),
        str(sum(pipeline.rejected.values())),
    )
    rules = Table(title="flags by rule", show_header=True)
    rules.add_column("rule")
    rules.add_column("flags", justify="right")
    for rule, n in sorted(pipeline.flags_by_rule.items()):
        rules.add_row(rule, str(n))
    types = Table(title="records by type", show_header=True)
    types.add_column("type")
    types.add_column("records", justify="right")
    for rtype, n in sorted(pipeline.records_by_type.items()):
        types.add_row(rtype, str(n))
    return Group(table, Columns([rules, types]))


def _summary(console: Console, market: Market, influx: InfluxClient, url: str, db: str) -> int:
    sales = {r["device"]: r for r in influx.rows(QUERIES["sales_per_scale"])}
    flags = influx.rows(QUERIES["flagged_scales"])
    by_device: dict[str, Counter[str]] = {}
    for row in flags:
        by_device.setdefault(row["device"], Counter())[row["rule"]] += row["flags"]
    console.print()
    table = Table(title="Per scale, from InfluxDB")
    for col in ("scale", "cheat (truth)", "sales stored", "turnover ¥", "flags by rule"):
        table.add_column(col)
    for stall in market.stalls:
        row = sales.get(stall.device_id, {})
        found = ", ".join(f"{k} {v}" for k, v in sorted(by_device.get(stall.device_id, Counter()).items()))
        table.add_row(
            stall.device_id,
            stall.cheat.kind if stall.cheat else "honest",
            str(row.get("sales", 0)),
            f"{row.get('fen', 0) / 100:.2f}",
            found or "-",
        )
    console.print(table)
    unseen = sorted({s.cheat.kind for s in market.stalls if s.cheat and not by_device.get(s.device_id)})
    if unseen:
        console.print(
            f"Not flagged yet: {', '.join(unseen)}. These leave no trace in a single sale that today's rules "
            "check (price arithmetic, load-cell coefficient, seal counters, stability); they need the anti-cheat "
            "engine's rules over zero offsets, market price medians, re-weighs and per-stall change detection."
        )
    counts: Counter[str] = Counter()
    for series in influx.query(QUERIES["field_records"]):
        counts[series["name"]] = max(v for v in series["values"][0][1:] if v is not None)
    positives = sum(r["count"] for r in influx.rows(QUERIES["positive_rapid_tests"]))
    if counts:
        console.print(
            f"Planting base: {counts['soil']} soil and {counts['air']} air readings, {counts['sensor_fault']} "
            f"sensor faults. Vehicle: {counts['gps']} GPS fixes, {counts['rapid_test']} rapid tests, "
            f"{positives} positive."
        )
    stored = sum(int(r.get("sales", 0)) for r in sales.values())
    console.print(f"[bold]{stored}[/] sales stored in InfluxDB database [bold]{db}[/] at {url}.")
    console.print("Look at the data with InfluxQL (run the demo with --keep-serving to keep InfluxDB up), e.g.:")
    console.print(
        f"  curl -sG '{url}/query' --data-urlencode 'db={db}' --data-urlencode 'q={QUERIES['flags_by_rule']}'",
        soft_wrap=True,
        highlight=False,
        markup=False,
    )
    console.print("These queries live in the dashboards package; Grafana provisioning over them is still to come.")
    return stored
