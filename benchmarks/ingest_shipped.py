"""The ingest as shipped, side by side with a baseline: `zhijian ingest run` as its own process, with its
defaults and its on-disk state, against real Mosquitto and influxd, beside ``benchmarks/baseline_ingest.py``
(one paho subscriber, orjson, no checks, 1 000-line writes, acknowledgements after the write).

Each run gives each consumer a state folder of its own (the shipped one: a devices file of --devices
devices, with keys, profile, market and verified scale facts, and the default file names for the spool,
dead letters, sequence book, alert book and anti-cheat checkpoint), a database and a persistent session
of its own. The consumer is started once and stopped (its session stays), the backlog is published to that
session with QoS 1, then the consumer is started again and timed from its subscription until InfluxDB
counts every record. Consumers alternate (shipped, baseline, shipped, …) within one run of the script;
figures are medians of --runs. The envelopes are the project's own (``device_profiles.encode``, each
device's key, seqs increasing per device), of honest-looking sales of 20 PLUs, bags and trays on the pan.

Printed per records/message: drain rate, CPU per record (the consumer process, user + system, from
/proc; Mosquitto and influxd not counted), peak RSS (VmHWM), and the ratio shipped / baseline; with
``--overload F`` (2), F times each consumer's drain rate offered to it running: records lost (0 expected:
the broker holds what the consumer cannot take yet) and how long after publishing they were stored; with
``--registered N``, the start time (process start → subscribed) and RSS of the shipped ingest with a
devices file of N devices: its first start (the file is read and the device snapshot written) and the
next (from the snapshot).

    .venv/bin/python benchmarks/ingest_shipped.py [--devices 1000] [--runs 3] [--messages-10 5000]
        [--messages-1 10000] [--registered 1000000] [--earlier DIR] [--profile DIR] [--set NAME=VALUE]

``--earlier DIR`` runs the ingest of another checkout too (``git archive REV | tar -x -C DIR``), as a third
consumer in the same rotation: before/after under the same load. ``--profile DIR`` records each drain with
py-spy (``pip install py-spy``), collapsed stacks per thread.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
from baseline_ingest import PARSER
from machine import describe, median
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from device_profiles import encode
from device_profiles.records import EXAMPLE_SALE
from zhijian_cli.servers import InfluxServer, MosquittoServer, free_port

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
T0 = 1_764_000_000_000
PLU_PRICES = {str(1000 + i): 200 + 450 * i for i in range(20)}  # fen/kg
TICK = os.sysconf("SC_CLK_TCK")
BOOT = "0" * 31 + "1"
POLL_S = 0.2  # how often InfluxDB is asked for the count: often enough to time a drain, seldom enough to cost little


def device_ids(n: int) -> list[str]:
    return [f"scale-{i:06d}" for i in range(n)]


def key_of(device: str) -> bytes:
    return hashlib.sha256(b"bench:" + device.encode()).digest()


def device_entry(i: int, device: str) -> dict[str, Any]:
    market = f"market-{i // 60:04d}"  # a market of 60 stalls
    return {
        "key": key_of(device).hex(),
        "profile": "zj-pcs-30",
        "tags": {"district": f"district-{i // 600:03d}", "market": market, "stall": f"S-{i % 60:03d}"},
        "scale": {
            "coefficient": 20_000.0,
            "e_mg": 5000,
            "accuracy_class": "III",
            "zero_counts": 120_000,
            "calibration_events": 3,
            "configuration_events": 7,
        },
    }


def write_devices(path: Path, n: int) -> None:
    """A devices file (format of cloud_ingest/registry_file.py), written as a stream: 1 M entries fit."""
    with path.open("w", encoding="utf-8") as f:
        f.write('{"devices": {')
        for i, device in enumerate(device_ids(n)):
            f.write(("," if i else "") + json.dumps(device) + ":" + json.dumps(device_entry(i, device)))
        f.write('}, "commodity_median": ' + json.dumps({p: 3000 for p in PLU_PRICES}) + "}")


def sale(rng: random.Random, txn: int, ts: int) -> dict[str, Any]:
    """An honest sale: the counts measure net + tare at 20 000 counts/kg, the amount rounds half up."""
    plu = rng.choice(list(PLU_PRICES))
    price = PLU_PRICES[plu] + rng.randrange(0, 200)
    net = rng.randrange(20, 3000) * 5000
    rec: dict[str, Any] = {
        **EXAMPLE_SALE,
        "ts": ts,
        "txn": txn,
        "plu": plu,
        "net_mg": net,
        "unit_price_fen_per_kg": price,
        "amount_fen": (net * price + 500_000) // 1_000_000,
        "stable_ms": rng.randrange(500, 2000),
        "empty_counts": 120_000,
        "zero_set_events": 1,
    }
    tare = rng.randrange(2, 400) * 1000 if rng.random() < 0.7 else 0
    rec["tare_mg"] = tare
    if tare:
        kind = rng.choice(("weighed", "preset"))
        rec["tare_kind"] = kind
        rec["tare_gross_mg"] = tare if kind == "weighed" else 0
    rec["raw_counts"] = 120_000 + (net + tare) // 50
    return rec


def backlog(devices: list[str], messages: int, per: int, seed: int = 1) -> list[tuple[str, bytes]]:
    """``messages`` signed envelopes of ``per`` sales, round robin over ``devices``, seqs from 1 per device."""
    rng = random.Random(seed)
    keys = {d: key_of(d) for d in devices}
    out = []
    for m in range(messages):
        device = devices[m % len(devices)]
        seq = (m // len(devices)) * per + 1
        records = [sale(rng, seq + k, T0 + (seq + k) * 60_000) for k in range(per)]
        payload = encode(device=device, boot=BOOT, seq=seq, sent_ms=T0, records=records, key=keys[device])
        out.append((f"zhijian/v1/{device}/data", payload))
    return out


def publish(port: int, messages: list[tuple[str, bytes]]) -> None:
    pub = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    pub.max_inflight_messages_set(1000)
    pub.connect("127.0.0.1", port)
    pub.loop_start()
    infos = [pub.publish(t, p, qos=1) for t, p in messages]
    for info in infos:
        info.wait_for_publish(60)
    pub.disconnect()
    pub.loop_stop()


def end_session(port: int, client_id: str) -> None:
    """Connect as ``client_id`` with a clean start and session expiry 0: the broker forgets its queue."""
    c = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = 0
    c.connect("127.0.0.1", port, clean_start=True, properties=props)
    c.loop_start()
    time.sleep(0.2)
    c.disconnect()
    c.loop_stop()


def proc_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def proc_kb(pid: int, key: str) -> int:
    for ln in Path(f"/proc/{pid}/status").read_text().splitlines():
        if ln.startswith(key + ":"):
            return int(ln.split()[1])
    return 0


@dataclass
class Consumer:
    """One consumer process: how to start it and how to tell when it is subscribed (epoch seconds)."""

    name: str
    argv: list[str]
    env: dict[str, str]
    cwd: Path
    connected_at: Callable[[str], float | None]
    proc: subprocess.Popen[bytes] | None = None
    log: Path | None = None

    def start(self) -> None:
        assert self.log is not None
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(self.argv, env=self.env, cwd=self.cwd, stdout=out, stderr=subprocess.STDOUT)

    def output(self) -> str:
        assert self.log is not None
        return self.log.read_text(errors="replace")

    def wait_connected(self, after: int, timeout_s: float = 300) -> float:
        """Epoch time of the subscription logged after byte ``after`` of the log."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            at = self.connected_at(self.output()[after:])
            if at is not None:
                return at
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise SystemExit(f"{self.name} exited: {self.output()[-3000:]}")
            time.sleep(0.02)
        raise SystemExit(f"{self.name} did not subscribe within {timeout_s} s: {self.output()[-3000:]}")

    def stop(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(120)
        self.proc = None


def shipped_connected(text: str) -> float | None:
    for ln in text.splitlines():
        if "ingest connected to" in ln:
            return datetime.strptime(ln[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()
    return None


def baseline_connected(text: str) -> float | None:
    for ln in text.splitlines():
        if ln.startswith("connected "):
            return float(ln.split()[1])
    return None


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("ZHIJIAN_")}


def make_shipped(
    folder: Path, devices_file: Path, port: int, influx_url: str, db: str, cid: str, extra: dict[str, str] | None = None
) -> Consumer:
    folder.mkdir(parents=True)
    (folder / "devices.json").symlink_to(devices_file)
    env = {
        **clean_env(),
        "ZHIJIAN_MQTT_PORT": str(port),
        "ZHIJIAN_MQTT_CLIENT_ID": cid,
        "ZHIJIAN_INFLUX_URL": influx_url,
        "ZHIJIAN_INFLUX_DB": db,
        "ZHIJIAN_METRICS_PORT": str(free_port()),
        **(extra or {}),
    }
    argv = [sys.executable, "-m", "zhijian_cli", "ingest", "run"]
    return Consumer("shipped", argv, env, folder, shipped_connected, log=folder / "ingest.log")


def make_baseline(folder: Path, port: int, influx_url: str, db: str, cid: str) -> Consumer:
    folder.mkdir(parents=True)
    argv = [sys.executable, str(HERE / "baseline_ingest.py"), "--mqtt-port", str(port)]
    argv += ["--influx-url", influx_url, "--db", db, "--client-id", cid]
    return Consumer("baseline", argv, clean_env(), folder, baseline_connected, log=folder / "baseline.log")


@dataclass
class Drain:
    rate: float  # records/s, subscribed → all counted in InfluxDB
    cpu_us: float  # consumer CPU per record over the same span
    rss_mb: float  # peak RSS of the consumer process
    start_s: float  # process start → subscribed
    servers_us: dict[str, float] = field(default_factory=dict)  # CPU per record of mosquitto and influxd


def count(http: httpx.Client, db: str) -> int:
    resp = http.get("/query", params={"db": db, "q": f"SELECT count(net_mg) FROM sale WHERE time >= {T0}ms"})
    series = resp.json()["results"][0].get("series")
    return int(series[0]["values"][0][1]) if series else 0


def warm_lines(devices: list[str], messages: list[tuple[str, bytes]]) -> list[str]:
    """One point a day before the backlog in every series the backlog writes, with the shipped ingest's tags
    and with the baseline's: the drain then stores into existing series, as a running city does (creating
    60 000 series in a fresh database is InfluxDB's work, and would be most of what is measured)."""
    where = {d: device_entry(i, d)["tags"] for i, d in enumerate(devices)}
    series = set()
    for _topic, payload in messages:
        doc = json.loads(payload)
        for rec in doc["records"]:
            series.add((doc["device"], rec["plu"], rec.get("tare_kind", "")))
    out = []
    for device, plu, kind in sorted(series):
        tags = {**where[device], "device": device, "plu": plu, **({"tare_kind": kind} if kind else {})}
        for keys in (sorted(tags), ["device", "plu", "tare_kind"]):
            tag_text = ",".join(f"{k}={tags[k]}" for k in keys if k in tags)
            out.append(f"sale,{tag_text} seq=0i,net_mg=0i {(T0 - 86_400_000) * 1_000_000}")
    return out


def drain(
    consumer: Consumer,
    port: int,
    http: httpx.Client,
    db: str,
    messages: list[tuple[str, bytes]],
    n: int,
    warm: list[str],
    servers: dict[str, int],
    profile: Path | None = None,
) -> Drain:
    http.post("/query", data={"q": f'CREATE DATABASE "{db}"'}).raise_for_status()
    for i in range(0, len(warm), 5000):
        body = "\n".join(warm[i : i + 5000]).encode()
        http.post("/write", params={"db": db, "precision": "ns"}, content=body).raise_for_status()
    consumer.start()  # first start: the on-disk state and the persistent session exist from now on
    consumer.wait_connected(0)
    consumer.stop()
    publish(port, messages)
    mark = len(consumer.output())
    spawned = time.time()
    consumer.start()
    assert consumer.proc is not None
    pid = consumer.proc.pid
    connected = consumer.wait_connected(mark)
    cpu0 = proc_cpu_s(pid)
    # A persistent session delivers from the CONNACK: the SUBACK both consumers report comes behind up to
    # the broker's inflight window of messages, some of them stored already. Timed is what is left.
    before = count(http, db)
    spy = None
    if profile is not None:  # py-spy (pip install py-spy) samples the drain: collapsed stacks per thread, busy only
        py_spy = str(Path(sys.executable).with_name("py-spy"))
        argv = [
            py_spy,
            "record",
            "--pid",
            str(pid),
            "--rate",
            "100",
            "--threads",
            "--format",
            "raw",
            "-o",
            str(profile),
        ]
        spy = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    server_cpu0 = {name: proc_cpu_s(p) for name, p in servers.items()}
    while (stored := count(http, db)) < n:
        if consumer.proc.poll() is not None:
            raise SystemExit(f"{consumer.name} exited: {consumer.output()[-3000:]}")
        time.sleep(POLL_S)
    done = time.time()
    cpu = proc_cpu_s(pid) - cpu0
    server_cpu = {name: (proc_cpu_s(p) - server_cpu0[name]) / (n - before) * 1e6 for name, p in servers.items()}
    rss = proc_kb(pid, "VmHWM") / 1024
    if spy is not None:
        spy.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
        spy.wait(60)
    consumer.stop()
    end_session(port, consumer.env.get("ZHIJIAN_MQTT_CLIENT_ID") or consumer.argv[-1])
    assert stored == n, (consumer.name, stored, n)
    timed = n - before
    return Drain(timed / (done - connected), cpu / timed * 1e6, rss, connected - spawned, server_cpu)


@dataclass
class Latency:
    p50_ms: float
    p99_ms: float
    lost: int
    offered: float  # records/s as published


LATENCY_POLL_S = 0.05


def latency(
    consumer: Consumer,
    port: int,
    http: httpx.Client,
    db: str,
    messages: list[tuple[str, bytes]],
    per: int,
    rate: float,
    warm: list[str],
) -> Latency:
    """Publish → stored at a fixed offered load to a running consumer. InfluxDB's count is read every
    LATENCY_POLL_S; a message counts as stored at the first reading that covers its records (both consumers
    store in arrival order), so figures are upper bounds within a reading's interval and query time."""
    http.post("/query", data={"q": f'CREATE DATABASE "{db}"'}).raise_for_status()
    for i in range(0, len(warm), 5000):
        http.post("/write", params={"db": db, "precision": "ns"}, content="\n".join(warm[i : i + 5000]).encode())
    consumer.start()
    consumer.wait_connected(0)
    pub = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    pub.max_inflight_messages_set(1000)
    pub.connect("127.0.0.1", port)
    pub.loop_start()
    sent = [0.0] * len(messages)
    every = per / rate

    def paced() -> None:
        start = time.time()
        for i, (topic_name, payload) in enumerate(messages):
            wait = start + i * every - time.time()
            if wait > 0:
                time.sleep(wait)
            sent[i] = time.time()
            pub.publish(topic_name, payload, qos=1)

    publisher = threading.Thread(target=paced)
    publisher.start()
    n = len(messages) * per
    readings: list[tuple[float, int]] = []
    deadline = time.time() + len(messages) * every + 60
    while time.time() < deadline:
        stored = count(http, db)
        readings.append((time.time(), stored))
        if stored >= n and not publisher.is_alive():
            break
        time.sleep(LATENCY_POLL_S)
    publisher.join()
    pub.disconnect()
    pub.loop_stop()
    consumer.stop()
    end_session(port, consumer.env.get("ZHIJIAN_MQTT_CLIENT_ID") or consumer.argv[-1])
    delays, k = [], 0
    for i in range(len(messages)):
        while k < len(readings) and readings[k][1] < (i + 1) * per:
            k += 1
        if k == len(readings):
            break
        delays.append(readings[k][0] - sent[i])
    delays.sort()
    lost = n - readings[-1][1]
    offered = n / (sent[-1] - sent[0]) if len(sent) > 1 else 0.0
    if not delays:
        return Latency(float("nan"), float("nan"), lost, offered)
    return Latency(
        delays[len(delays) // 2] * 1000, delays[min(len(delays) - 1, len(delays) * 99 // 100)] * 1000, lost, offered
    )


@dataclass
class Start:
    seconds: float  # process start → subscribed
    rss_mb: float  # RSS once subscribed
    peak_mb: float  # peak RSS (VmHWM) until then


def registered_start(tmp: Path, port: int, influx_url: str, n: int) -> tuple[Start, Start, float]:
    """The first start (devices file read, snapshot written) and the second (from the snapshot) with a
    devices file of ``n`` devices, and the file's size in MB."""
    devices_file = tmp / f"devices-{n}.json"
    write_devices(devices_file, n)
    consumer = make_shipped(tmp / f"registered-{n}", devices_file, port, influx_url, "registered", f"reg-{n}")
    starts = []
    for _ in range(2):
        after = len(consumer.output()) if consumer.log is not None and consumer.log.exists() else 0
        spawned = time.time()
        consumer.start()
        assert consumer.proc is not None
        connected = consumer.wait_connected(after, timeout_s=600)
        pid = consumer.proc.pid
        starts.append(Start(connected - spawned, proc_kb(pid, "VmRSS") / 1024, proc_kb(pid, "VmHWM") / 1024))
        consumer.stop()
    end_session(port, f"reg-{n}")
    return starts[0], starts[1], devices_file.stat().st_size / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", type=int, default=1000, help="devices in the devices file and sending")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--messages-10", type=int, default=5000, help="backlog at 10 records/message (0: skip)")
    parser.add_argument("--messages-1", type=int, default=10000, help="backlog at 1 record/message (0: skip)")
    parser.add_argument(
        "--latency-rate", type=float, default=10000, help="records/s offered for publish → stored (0: skip)"
    )
    parser.add_argument("--latency-s", type=float, default=20, help="how long that load is offered")
    parser.add_argument(
        "--overload",
        type=float,
        default=2.0,
        help="then offer this many times each consumer's drain rate (10 per message) to it running (0: skip)",
    )
    parser.add_argument("--registered", type=int, default=0, help="also: start time and RSS with this many devices")
    parser.add_argument("--only", choices=("shipped", "baseline"), help="run one consumer only (profiling)")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a ZHIJIAN_ setting of the shipped ingest (experiments; default: none, as shipped)",
    )
    parser.add_argument(
        "--earlier",
        type=Path,
        help="also run `zhijian ingest run` from this checkout (e.g. `git archive <rev> | tar -x -C DIR`), "
        "interleaved: before/after figures under the same load",
    )
    parser.add_argument("--profile", type=Path, help="folder for py-spy profiles (collapsed stacks) of each drain")
    args = parser.parse_args()
    print(f"machine: {describe()}")
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"baseline parses with {PARSER}")
    devices = device_ids(args.devices)
    extra = dict(f"ZHIJIAN_{s}".split("=", 1) for s in args.set)
    if extra:
        print(f"shipped ingest with {extra}, not as shipped")
    with (
        tempfile.TemporaryDirectory() as tmp_dir,
        MosquittoServer(Path(tmp_dir) / "broker") as broker,
        InfluxServer(Path(tmp_dir) / "influx") as influx,
    ):
        tmp = Path(tmp_dir)
        devices_file = tmp / "devices.json"
        write_devices(devices_file, args.devices)
        http = httpx.Client(base_url=influx.url, timeout=30)
        names = [args.only] if args.only else ["shipped", "baseline"]

        def consumer_for(name: str, tag: str) -> Consumer:
            if name == "baseline":
                return make_baseline(tmp / tag, broker.port, influx.url, tag, tag)
            consumer = make_shipped(tmp / tag, devices_file, broker.port, influx.url, tag, tag, extra)
            if name == "earlier":  # the same process, from another checkout's code
                consumer.env["PYTHONPATH"] = str(args.earlier.resolve())
            return consumer

        if args.earlier:
            names.insert(1, "earlier")
        sustainable: dict[int, dict[str, float]] = {}
        for per, messages in ((10, args.messages_10), (1, args.messages_1)):
            if not messages:
                continue
            payloads = backlog(devices, messages, per)
            warm = warm_lines(devices, payloads)
            servers = {"mosquitto": broker.pid, "influxd": influx.pid}
            n = messages * per
            results: dict[str, list[Drain]] = {name: [] for name in names}
            for run in range(args.runs):
                for name in names:
                    tag = f"{name}_{per}_{run}"
                    consumer = consumer_for(name, tag)
                    profile = args.profile / f"{tag}.txt" if args.profile else None
                    d = drain(consumer, broker.port, http, tag, payloads, n, warm, servers, profile)
                    results[name].append(d)
                    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
                    print(
                        f"  {per:2d} rec/msg run {run + 1} {name:8s}: {d.rate:8,.0f} records/s, {d.cpu_us:6.1f} µs CPU"
                        f"/record, peak RSS {d.rss_mb:5.0f} MB, start {d.start_s:4.1f} s; "
                        + ", ".join(f"{k} {v:.0f} µs/record" for k, v in d.servers_us.items())
                        + f"  (load {load})",
                        flush=True,
                    )
            print(
                f"{per} record(s)/message, {messages:,} messages = {n:,} records, {args.devices:,} devices,"
                f" median of {args.runs}:"
            )
            med = {
                name: Drain(*(median([getattr(d, f) for d in ds]) for f in ("rate", "cpu_us", "rss_mb", "start_s")))
                for name, ds in results.items()
            }
            for name, m in med.items():
                print(
                    f"  {name:8s}: drain {m.rate:8,.0f} records/s, {m.cpu_us:6.1f} µs CPU/record, "
                    f"peak RSS {m.rss_mb:4.0f} MB"
                )
            sustainable[per] = {name: m.rate for name, m in med.items()}
            if "baseline" in med:
                b = med["baseline"]
                for name in (n for n in med if n != "baseline"):
                    s = med[name]
                    print(f"  ratio {name}/baseline: drain {s.rate / b.rate:.3f}, CPU/record {s.cpu_us / b.cpu_us:.2f}")
        if args.overload and 10 in sustainable:
            per = 10
            for name in names:
                rate = args.overload * sustainable[10][name]
                messages = int(rate * args.latency_s / per)
                payloads = backlog(devices, messages, per, seed=3)
                one = latency(
                    consumer_for(name, f"over_{name}"),
                    broker.port,
                    http,
                    f"over_{name}",
                    payloads,
                    per,
                    rate,
                    warm_lines(devices, payloads),
                )
                print(
                    f"overload: {name:8s} offered {one.offered:,.0f} records/s for {args.latency_s:.0f} s "
                    f"({args.overload:g}× its drain rate): {one.lost} lost; stored within p50 {one.p50_ms:,.0f} ms, "
                    f"p99 {one.p99_ms:,.0f} ms of publishing",
                    flush=True,
                )
        if args.latency_rate:
            per = 10
            messages = int(args.latency_rate * args.latency_s / per)
            payloads = backlog(devices, messages, per, seed=2)
            warm = warm_lines(devices, payloads)
            lat: dict[str, list[Latency]] = {name: [] for name in names}
            for run in range(args.runs):
                for name in names:
                    tag = f"lat_{name}_{run}"
                    consumer = consumer_for(name, tag)
                    one = latency(consumer, broker.port, http, tag, payloads, per, args.latency_rate, warm)
                    lat[name].append(one)
                    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
                    print(
                        f"  latency run {run + 1} {name:8s}: p50 {one.p50_ms:6.0f} ms, p99 {one.p99_ms:6.0f} ms, "
                        f"{one.lost} lost, offered {one.offered:,.0f} records/s  (load {load})",
                        flush=True,
                    )
            print(
                f"publish → stored at {args.latency_rate:,.0f} records/s offered ({per} records/message, "
                f"{args.latency_s:.0f} s, {args.devices:,} devices; InfluxDB read every "
                f"{LATENCY_POLL_S * 1000:.0f} ms), median of {args.runs}:"
            )
            for name, ls in lat.items():
                p50, p99 = median([x.p50_ms for x in ls]), median([x.p99_ms for x in ls])
                print(f"  {name:8s}: p50 {p50:6.0f} ms, p99 {p99:6.0f} ms, lost {max(x.lost for x in ls)}")
        if args.registered:
            first, second, size = registered_start(tmp, broker.port, influx.url, args.registered)
            print(f"{args.registered:,} registered devices (devices file {size:,.0f} MB), process start → subscribed:")
            for what, st in (("first start (file read, snapshot written)", first), ("next start (snapshot)", second)):
                print(f"  {what:42s}: {st.seconds:5.1f} s, RSS {st.rss_mb:5,.0f} MB (peak {st.peak_mb:5,.0f} MB)")
        print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
