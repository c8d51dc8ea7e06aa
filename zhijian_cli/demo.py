"""``zhijian demo``: the whole system on one machine, with a simulated market.

Provisions every simulated device through a registry under the data directory (as field technicians
do), starts (unless told to use existing ones) a private Mosquitto enforcing the registry's passwords and
ACL and a private influxd, an ingest worker reading the registry, a market of simulated MT-SICS scales on
pseudo-terminals (some cheating), and one edge agent per scale; shows live progress, then stops
everything it started.

Its data goes to its own InfluxDB database (``zhijian_demo``), so a demo pointed at an InfluxDB that
also holds real data (``--influx-url``) writes nothing into the production database ``zhijian``, and its
summary counts only its own devices since it started (a second run finds the first one's points).
``--export DIR`` writes what it stored in the input format of ``zhijian anti-cheat score``
(:mod:`zhijian_cli.demo_export`).
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import time
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from rich.columns import Columns
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from cloud_ingest import InfluxClient, IngestSettings, Pipeline
from dashboards import QUERIES
from device_profiles import builtin
from device_registry.broker_files import INGEST_USER
from edge_agent import Agent, BrokerConfig, MtSicsSource
from firmware_sim import Market

from .demo_export import export_run, registry_facts
from .demo_field import BASE_ID, VEHICLE_ID, start_base, start_vehicle
from .demo_grafana import write_demo_provisioning
from .demo_registry import DemoRegistry, provision_demo
from .demo_view import SEP, logs_to_file, show_table
from .ingest_devices import build_worker, registry_devices
from .servers import InfluxServer, MosquittoServer, free_port

log = logging.getLogger(__name__)
DRAIN_S = 10.0  # after the market closes, the last sales may take this long to reach InfluxDB
PLAIN_EVERY_S = 5.0  # without a terminal, a progress line this often
DEMO_DB = "zhijian_demo"  # never the production default `zhijian`


@dataclass(frozen=True, kw_only=True)
class DemoOptions:
    duration_s: float = 60.0
    scales: int = 20
    cheaters: int = 8  # one of each method in firmware_sim.CHEAT_KINDS
    sales_per_s: float = 20.0
    data_dir: Path = Path(".zhijian-demo")
    mqtt_host: str | None = None
    mqtt_port: int = 1883
    influx_url: str | None = None
    influx_db: str = DEMO_DB
    seed: int = 2026
    keep_serving: bool = False
    field_devices: bool = True
    export_dir: Path | None = None  # write the run's scale data here for `zhijian anti-cheat score`


def _start_field_agents(
    stack: ExitStack,
    opts: DemoOptions,
    market: Market,
    keys: dict[str, bytes],
    to_broker: Callable[[str], BrokerConfig],
) -> list[Agent]:
    """The planting base's sensor gateway and the rapid-test vehicle touring the market's stalls."""
    stalls = [s.device_id for s in market.stalls]
    base = start_base(stack, opts.data_dir, keys[BASE_ID], to_broker(BASE_ID), interval_s=2.0)
    vehicle = start_vehicle(
        stack,
        opts.data_dir,
        keys[VEHICLE_ID],
        to_broker(VEHICLE_ID),
        stalls=stalls,
        sample_every_s=max(3.0, opts.duration_s / 6),
    )
    return [base, vehicle]


def run_demo(opts: DemoOptions, console: Console) -> int:
    """Run the demo; returns the number of sales stored in InfluxDB."""
    if opts.data_dir.exists():
        shutil.rmtree(opts.data_dir)  # each demo starts fresh: simulated scales restart their counters
    opts.data_dir.mkdir(parents=True)
    started_ms = int(time.time() * 1000)
    with ExitStack() as stack:
        stack.enter_context(logs_to_file(opts.data_dir / "demo.log", console))  # not over the live view
        mqtt_host, mqtt_port = opts.mqtt_host or "127.0.0.1", opts.mqtt_port
        if opts.mqtt_host is None:
            mqtt_port = free_port()
        profile = builtin("zj-pcs-30")
        market = Market(profile, n_scales=opts.scales, cheaters=opts.cheaters, seed=opts.seed).start()
        stack.callback(market.close)
        # every device registered, verified and provisioned through the registry, as a technician would
        reg = provision_demo(opts.data_dir, market, broker_host=mqtt_host, broker_port=mqtt_port)
        broker: MosquittoServer | None = None
        if opts.mqtt_host is None:  # our own broker enforces the registry's passwords and ACL
            broker = MosquittoServer(opts.data_dir / "mosquitto", port=mqtt_port, auth=(reg.passwd_file, reg.acl_file))
            stack.enter_context(broker)
        influx_url = opts.influx_url
        if influx_url is None:
            influx_url = stack.enter_context(InfluxServer(opts.data_dir / "influxdb")).url
        auth = "with passwords and ACL from the registry" if broker else "(yours: authentication is up to it)"
        console.print(f"[bold]Broker[/] mqtt://{mqtt_host}:{mqtt_port} {auth}   [bold]InfluxDB[/] {influx_url}")

        env_file = opts.data_dir / "technician.env"  # the registry settings of this demo, for `zhijian device …`
        env = reg.technician_env(mqtt_port, broker.pid_path if broker else None) | {"ZHIJIAN_INFLUX_URL": influx_url}
        env_file.write_text("".join(f"{k}={v}\n" for k, v in env.items()), encoding="utf-8")

        influx = InfluxClient(influx_url, opts.influx_db)
        stack.callback(influx.close)
        influx.create_database()

        pipeline = _start_ingest(stack, opts, reg, market, influx, (mqtt_host, mqtt_port, influx_url))

        def to_broker(device: str) -> BrokerConfig:
            return BrokerConfig(host=mqtt_host, port=mqtt_port, username=device, password=reg.credentials[device][1])

        keys = {device: key for device, (key, _password) in reg.credentials.items()}
        agents = _start_agents(stack, market, keys, opts.data_dir, to_broker)
        if opts.field_devices:
            agents += _start_field_agents(stack, opts, market, keys, to_broker)

        console.print(
            f"Market of {opts.scales} scales ({opts.cheaters} cheating), about {opts.sales_per_s:g} sales/s, "
            f"for {_span(opts)}. Ctrl-C stops early."
        )
        _run_market(opts, console, market, agents, pipeline)
        stored = _summary(console, market, influx, influx_url, opts.influx_db, _scope(started_ms, _own(market)))
        write_demo_provisioning(console, opts.data_dir, influx_url, opts.influx_db)
        _export(console, opts.export_dir, reg, market, influx, started_ms)
        if opts.keep_serving:
            for agent in agents:  # the market is closed; keep only broker, ingest and InfluxDB
                agent.stop()
            console.print(f"Broker, ingest and InfluxDB stay up for queries ({influx_url}); Ctrl-C stops them.")
            console.print(
                f"To provision more devices into it (the ingest picks them up within seconds): "
                f"set -a; . {env_file}; set +a   then use `zhijian device …` (see the README)",
                highlight=False,
            )
            with contextlib.suppress(KeyboardInterrupt):
                while True:
                    time.sleep(1)
    console.print("All demo processes stopped.")
    return stored


def _own(market: Market) -> list[str]:
    """This demo's devices: the summary and the export count these and nothing else in the database."""
    return [*(s.device_id for s in market.stalls), market.fair.device_id, BASE_ID, VEHICLE_ID]


def _export(
    console: Console, out: Path | None, reg: DemoRegistry, market: Market, influx: InfluxClient, since_ms: int
) -> None:
    """``--export``: the run's scale data for `zhijian anti-cheat score`."""
    if out is None:
        return
    facts = registry_facts(reg.url, reg.key_secret, market.commodity_medians())
    done = export_run(influx, _own(market), since_ms, facts, out)
    console.print(
        f"Exported {done.rows} rows and the facts of {done.scales} scales to {out}; score them "
        f"with: zhijian anti-cheat score {done.transactions} --registry {done.registry}",
        highlight=False,
        markup=False,
    )


def _span(opts: DemoOptions) -> str:
    return f"{opts.duration_s:g} s of sales + up to {DRAIN_S:g} s drain"


def _scope(since_ms: int, devices: list[str]) -> str:
    """An InfluxQL condition for this run's points of its own devices (ids are letters, digits, '-')."""
    return f'time >= {since_ms * 1_000_000} AND "device" =~ /^({"|".join(devices)})$/'


def _within(query: str, scope: str) -> str:
    """``query`` (a dashboards query) restricted to ``scope``."""
    if " WHERE " in query:
        return query.replace(" WHERE ", f" WHERE {scope} AND ", 1)
    head, group, tail = query.partition(" GROUP BY ")
    return f"{head} WHERE {scope}{group}{tail}"


def _start_ingest(
    stack: ExitStack,
    opts: DemoOptions,
    reg: DemoRegistry,
    market: Market,
    influx: InfluxClient,
    where: tuple[str, int, str],
) -> Pipeline:
    """An ingest worker on its own broker account (its client id is the account's name, as the broker
    enforces), reading devices from the registry and following it."""
    mqtt_host, mqtt_port, influx_url = where
    live = registry_devices(reg.url, reg.key_secret, refresh_s=2.0, commodity_median=market.commodity_medians())
    settings = IngestSettings(
        mqtt_host=mqtt_host,
        mqtt_port=mqtt_port,
        mqtt_username=INGEST_USER,
        mqtt_password=reg.ingest_password,
        influx_url=influx_url,
        influx_db=opts.influx_db,
        batch_max_ms=100,
        status_period_s=15.0,  # scale_status moves within a demo of a minute
        spool_path=opts.data_dir / "spool.sqlite",
        state_path=opts.data_dir / "ingest_state.sqlite",
    )
    worker = build_worker(settings, influx, live.current, live)
    worker.start()
    stack.callback(worker.stop, end_session=True)
    return worker.pipeline


def _run_market(opts: DemoOptions, console: Console, market: Market, agents: list[Agent], pipeline: Pipeline) -> None:
    """Make sales at the chosen rate for the chosen time, showing progress; then let the last ones land."""
    started = time.monotonic()
    interval = 1.0 / opts.sales_per_s
    next_sale = started
    title = f"Zhijian demo ({_span(opts)})"
    if not console.is_terminal:  # a pipe or a log: plain lines, never cut or wrapped
        return _run_plain(opts, console, market, agents, pipeline)
    try:
        with Live(console=console, refresh_per_second=4) as live:
            while (now := time.monotonic()) - started < opts.duration_s:
                while next_sale <= now:
                    market.tick()
                    next_sale += interval
                live.update(_progress(market, agents, pipeline, now - started, title))
                time.sleep(0.05)
            # let the last sales reach InfluxDB before the summary
            deadline = time.monotonic() + DRAIN_S
            while time.monotonic() < deadline and _in_flight(market, agents, pipeline):
                live.update(_progress(market, agents, pipeline, time.monotonic() - started, title))
                time.sleep(0.1)
    except KeyboardInterrupt:
        console.print("[yellow]Interrupted; stopping.[/]")


def _run_plain(opts: DemoOptions, console: Console, market: Market, agents: list[Agent], pipeline: Pipeline) -> None:
    """The market without a terminal: one line of counts every few seconds."""
    started = time.monotonic()
    interval = 1.0 / opts.sales_per_s
    next_sale = next_line = started
    console.out(SEP.join(("elapsed_s", *_COUNTS)), highlight=False)
    try:
        while (now := time.monotonic()) - started < opts.duration_s + DRAIN_S:
            selling = now - started < opts.duration_s
            if not selling and not _in_flight(market, agents, pipeline):
                break
            while selling and next_sale <= now:
                market.tick()
                next_sale += interval
            if now >= next_line:
                counts = _counts(market, agents, pipeline)
                console.out(SEP.join((f"{now - started:.1f}", *counts)), highlight=False)
                next_line += PLAIN_EVERY_S
            time.sleep(0.05)
        counts = _counts(market, agents, pipeline)
        console.out(SEP.join((f"{time.monotonic() - started:.1f}", *counts)), highlight=False)
    except KeyboardInterrupt:
        console.print("Interrupted; stopping.")


def _start_agents(
    stack: ExitStack,
    market: Market,
    keys: dict[str, bytes],
    data_dir: Path,
    broker: Callable[[str], BrokerConfig],
) -> list[Agent]:
    """One edge agent per stall, reading the stall's scale over its pty; each stopped by ``stack``."""
    agents = []
    for stall in [*market.stalls, market.fair]:
        agent = Agent(
            device_id=stall.device_id,
            key=keys[stall.device_id],
            sources=[MtSicsSource(stall.firmware.profile, stall.server.port)],
            outbox_path=data_dir / f"outbox-{stall.device_id}.sqlite",
            broker=broker(stall.device_id),
        )
        agents.append(agent.start())
        stack.callback(agent.stop, drain_s=3)
    return agents


def _in_flight(market: Market, agents: list[Agent], pipeline: Pipeline) -> bool:
    del agents
    return pipeline.records_by_type["sale"] < sum(s.sales for s in market.stalls)


_COUNTS = ("sales", "taken", "outbox", "messages", "records", "points", "flagged", "rejected")


def _counts(market: Market, agents: list[Agent], pipeline: Pipeline) -> tuple[str, ...]:
    return (
        str(sum(s.sales for s in market.stalls)),
        str(sum(a.taken for a in agents)),
        str(sum(a.outbox.depth for a in agents)),
        str(pipeline.received),
        str(pipeline.accepted_records),
        str(pipeline.stored_points),
        str(pipeline.flagged),
        str(sum(pipeline.rejected.values())),
    )


def _progress(market: Market, agents: list[Agent], pipeline: Pipeline, elapsed: float, title: str) -> Group:
    table = Table(
        title=f"{title} — {elapsed:5.1f} s",
        caption="sales made · taken into outboxes · waiting in outboxes · MQTT messages received · "
        "records accepted · points stored · sales flagged · payloads rejected",
    )
    for col in _COUNTS:
        table.add_column(col, justify="right")
    table.add_row(*_counts(market, agents, pipeline))
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


def _summary(console: Console, market: Market, influx: InfluxClient, url: str, db: str, scope: str) -> int:
    sales = {r["device"]: r for r in influx.rows(_within(QUERIES["sales_per_scale"], scope))}
    flags = influx.rows(_within(QUERIES["flagged_scales"], scope))
    by_device: dict[str, Counter[str]] = {}
    for row in flags:
        by_device.setdefault(row["device"], Counter())[row["rule"]] += row["flags"]
    status = 'SELECT last("online") AS online FROM "scale_status" GROUP BY "device", "stall", "vendor"'
    where = {
        r["device"]: f"{r.get('stall') or '?'} · {r.get('vendor') or '?'}" for r in influx.rows(_within(status, scope))
    }
    console.print()
    rows = []
    for stall in market.stalls:
        row = sales.get(stall.device_id, {})
        found = ", ".join(f"{k} {v}" for k, v in sorted(by_device.get(stall.device_id, Counter()).items()))
        rows.append(
            (
                stall.device_id,
                where.get(stall.device_id, "?"),
                stall.cheat.kind if stall.cheat else "honest",
                str(stall.sales),
                str(row.get("sales", 0)),
                f"{row.get('fen', 0) / 100:.2f}",
                found or "-",
            )
        )
    columns = ("scale", "stall · vendor", "cheat (truth)", "sales made", "sales stored", "turnover ¥", "flags by rule")
    show_table(console, "Per scale, from InfluxDB (this run)", columns, rows)
    unseen = sorted({s.cheat.kind for s in market.stalls if s.cheat and not by_device.get(s.device_id)})
    if unseen:
        console.print(
            f"Not flagged yet: {', '.join(unseen)}. These leave no trace in a single sale that today's rules "
            "check (price arithmetic, load-cell coefficient, seal counters, stability); they need the anti-cheat "
            "engine's rules over zero offsets, market price medians, re-weighs and per-stall change detection."
        )
    counts: Counter[str] = Counter()
    for series in influx.query(_within(QUERIES["field_records"], scope)):
        counts[series["name"]] = max(v for v in series["values"][0][1:] if v is not None)
    positives = sum(r["count"] for r in influx.rows(_within(QUERIES["positive_rapid_tests"], scope)))
    if counts:
        console.print(
            f"Planting base: {counts['soil']} soil and {counts['air']} air readings, {counts['sensor_fault']} "
            f"sensor faults. Vehicle: {counts['gps']} GPS fixes, {counts['rapid_test']} rapid tests, "
            f"{positives} positive."
        )
    stored = sum(int(sales.get(s.device_id, {}).get("sales", 0)) for s in market.stalls)  # ours only
    short = {s.device_id: s.sales - int(sales.get(s.device_id, {}).get("sales", 0)) for s in market.stalls}
    missing = {d: n for d, n in short.items() if n}
    if missing:
        console.print(
            f"[bold red]{sum(missing.values())} sales made are not stored[/] ({', '.join(sorted(missing))}): they "
            "are still in the agents' outboxes, waiting for the cloud (the demo stopped before they arrived)."
        )
    else:
        console.print(f"Every sale made is stored: {stored} of {stored}, per scale.")
    console.print(f"[bold]{stored}[/] sales stored in InfluxDB database [bold]{db}[/] at {url}.")
    console.print("Look at the data with InfluxQL (run the demo with --keep-serving to keep InfluxDB up), e.g.:")
    console.print(
        f"  curl -sG '{url}/query' --data-urlencode 'db={db}' --data-urlencode 'q={QUERIES['flags_by_rule']}'",
        soft_wrap=True,
        highlight=False,
        markup=False,
    )
    return stored
