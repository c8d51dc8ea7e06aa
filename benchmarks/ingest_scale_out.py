"""The NATS scale-out as shipped: `zhijian ingest route` and 1, 2, 3 `zhijian ingest run` (ZHIJIAN_TRANSPORT=nats)
as processes, with their defaults and on-disk state, against private Mosquitto, nats-server and influxd.

For each number of workers: a stream and a database of their own; the workers are started and waited for
until they share the partitions; the router's persistent session is made, the router stopped, the backlog
(--messages signed envelopes of --per sales, round robin over --devices scales in markets of 16, so
≥ 60 markets for 1 000 devices) published to its session; then the router is started again and timed from
its subscription until InfluxDB counts every record. Printed: the drain rate (records/s, end to end
through router and workers), how long the router alone took to move the backlog into the stream, the CPU
per record (user + system, /proc) of all workers together, of the router, of influxd and of nats-server,
and each worker's share (stream messages and records it received, partitions it owned, its CPU seconds).
Interleaved with the same drain by the default, one `zhijian ingest run` subscribed to Mosquitto (row
"direct"). On a machine with fewer cores than processes the rate cannot grow with workers (and on 2 cores
influxd's CPU per record bounds it); the workers' CPU per record says what each worker adds on cores (or
hosts) of its own.

    .venv/bin/python benchmarks/ingest_scale_out.py [--devices 1000] [--messages 6000] [--per 10]
        [--workers 1,2,3] [--partitions 16] [--runs 2]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import ingest_shipped
from ingest_shipped import backlog, count, device_ids, make_shipped, proc_cpu_s, publish, warm_lines, write_devices
from machine import describe, median

from zhijian_cli.servers import InfluxServer, MosquittoServer, NatsServer, free_port

MARKET_SIZE = 16
_stalls = ingest_shipped.device_entry


def device_entry(i: int, device: str) -> dict[str, Any]:
    entry = _stalls(i, device)
    entry["tags"] = {**entry["tags"], "market": f"market-{i // MARKET_SIZE:04d}", "stall": f"S-{i % MARKET_SIZE:03d}"}
    return entry


ingest_shipped.device_entry = device_entry  # write_devices and warm_lines use these markets


def metrics(port: int) -> dict[str, float]:
    out: dict[str, float] = {}
    for line in httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


def health(port: int) -> dict[str, Any]:
    doc: dict[str, Any] = httpx.get(f"http://127.0.0.1:{port}/health", timeout=10).json()
    return doc


def wait(predicate: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except (httpx.HTTPError, ValueError, KeyError):
            pass
        time.sleep(0.2)
    raise SystemExit(f"not within {timeout_s} s: {what}")


def run(n: int, args: argparse.Namespace, tmp: Path, servers: dict[str, Any], messages: list[Any]) -> dict[str, Any]:
    mosquitto, nats, influx = servers["mosquitto"], servers["nats"], servers["influx"]
    name = f"scale_{n}_{int(time.time())}"
    db = name
    http = httpx.Client(base_url=influx.url, timeout=60)
    http.post("/query", params={"q": f'CREATE DATABASE "{db}"'})
    http.post("/write", params={"db": db}, content="\n".join(warm_lines(servers["devices"], messages)).encode())
    env = {
        **os.environ,
        "ZHIJIAN_MQTT_PORT": str(mosquitto.port),
        "ZHIJIAN_NATS_URL": nats.url,
        "ZHIJIAN_NATS_STREAM": name.upper(),
        "ZHIJIAN_NATS_PARTITIONS": str(args.partitions),
        "ZHIJIAN_INFLUX_URL": influx.url,
        "ZHIJIAN_INFLUX_DB": db,
        "ZHIJIAN_DEVICES_FILE": str(servers["devices_file"]),
    }
    procs: list[subprocess.Popen[bytes]] = []

    def spawn(what: str, command: str, **extra: str) -> tuple[subprocess.Popen[bytes], int]:
        port = free_port()
        log = (tmp / f"{name}-{what}.log").open("ab")
        proc = subprocess.Popen(
            [sys.executable, "-m", "zhijian_cli", "ingest", command],
            env={**env, "ZHIJIAN_METRICS_PORT": str(port), **extra},
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=tmp,
        )
        procs.append(proc)
        return proc, port

    workers = {}
    pids = {}
    for i in range(n):
        proc, port = spawn(
            f"w{i}",
            "run",
            ZHIJIAN_TRANSPORT="nats",
            ZHIJIAN_NATS_WORKER_ID=f"w{i}",
            ZHIJIAN_MQTT_CLIENT_ID=f"{name}-w{i}",
            ZHIJIAN_NATS_STATE_DIR=str(tmp / f"{name}-w{i}"),
        )
        workers[f"w{i}"] = port
        pids[f"w{i}"] = proc.pid
    share = -(-args.partitions // n)

    def balanced() -> bool:
        owned = [health(p)["partitions"] for p in workers.values()]
        taken = sorted(x for ps in owned for x in ps)
        return taken == list(range(args.partitions)) and all(len(ps) <= share for ps in owned)

    wait(balanced, 120, f"{n} workers sharing the partitions")
    router_id = f"router-{name}"
    router, rport = spawn("router", "route", ZHIJIAN_MQTT_CLIENT_ID=router_id)
    wait(lambda: health(rport)["connected"], 60, "router subscribed")
    router.send_signal(signal.SIGTERM)
    router.wait(30)
    publish(mosquitto.port, messages)
    records = len(messages) * args.per
    router, rport = spawn("router-2", "route", ZHIJIAN_MQTT_CLIENT_ID=router_id)
    wait(lambda: health(rport)["connected"], 60, "router subscribed again")
    t0 = time.monotonic()
    cpu0 = {w: proc_cpu_s(pid) for w, pid in pids.items()}
    router_cpu0 = proc_cpu_s(router.pid)
    server_pids = {"influxd": influx.pid, "nats": nats.pid}
    server_cpu0 = {k: proc_cpu_s(pid) for k, pid in server_pids.items()}
    routed_s = None
    while True:
        if routed_s is None:
            m = metrics(rport)
            if sum(v for k, v in m.items() if k.startswith("zhijian_router_messages_total")) >= len(messages):
                routed_s = time.monotonic() - t0
        if count(http, db) >= records:
            break
        time.sleep(0.2)
    drain_s = time.monotonic() - t0
    worker_cpu = {w: proc_cpu_s(pid) - cpu0[w] for w, pid in pids.items()}
    router_cpu = proc_cpu_s(router.pid) - router_cpu0
    server_us = {k: (proc_cpu_s(pid) - server_cpu0[k]) / records * 1e6 for k, pid in server_pids.items()}
    shares = {}
    for wid, port in workers.items():
        m = metrics(port)
        shares[wid] = {
            "messages": int(sum(v for k, v in m.items() if k.startswith("zhijian_ingest_partition_messages_total"))),
            "records": int(sum(v for k, v in m.items() if k.startswith("zhijian_ingest_records_accepted_total"))),
            "partitions": len(health(port)["partitions"]),
            "cpu_s": worker_cpu[wid],
        }
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
    http.post("/query", params={"q": f'DROP DATABASE "{db}"'})  # InfluxDB's index of earlier runs slows the next
    http.close()
    return {
        "workers": n,
        "rate": records / drain_s,
        "drain_s": drain_s,
        "routed_s": routed_s or drain_s,
        "shares": shares,
        "worker_us": sum(worker_cpu.values()) / records * 1e6,
        "router_us": router_cpu / records * 1e6,
        "server_us": server_us,
    }


def run_direct(
    args: argparse.Namespace, tmp: Path, servers: dict[str, Any], messages: list[Any]
) -> tuple[float, float]:
    """The default for comparison: one `zhijian ingest run` subscribed to Mosquitto (no router, no NATS)."""
    mosquitto, influx = servers["mosquitto"], servers["influx"]
    name = f"direct_{int(time.time())}"
    http = httpx.Client(base_url=influx.url, timeout=60)
    http.post("/query", params={"q": f'CREATE DATABASE "{name}"'})
    http.post("/write", params={"db": name}, content="\n".join(warm_lines(servers["devices"], messages)).encode())
    consumer = make_shipped(tmp / name, servers["devices_file"], mosquitto.port, influx.url, name, f"ingest-{name}")
    consumer.start()
    consumer.wait_connected(0)
    consumer.stop()
    publish(mosquitto.port, messages)
    after = len(consumer.output())
    consumer.start()
    subscribed = consumer.wait_connected(after)
    assert consumer.proc is not None
    cpu0 = proc_cpu_s(consumer.proc.pid)
    while count(http, name) < len(messages) * args.per:
        time.sleep(0.2)
    drain_s = time.time() - subscribed
    cpu_us = (proc_cpu_s(consumer.proc.pid) - cpu0) / (len(messages) * args.per) * 1e6
    consumer.stop()
    http.post("/query", params={"q": f'DROP DATABASE "{name}"'})
    http.close()
    return len(messages) * args.per / drain_s, cpu_us


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--messages", type=int, default=6000)
    parser.add_argument("--runs", type=int, default=2, help="rounds over --workers (interleaved); medians printed")
    parser.add_argument("--per", type=int, default=10, help="records per message")
    parser.add_argument("--workers", default="1,2,3")
    parser.add_argument("--partitions", type=int, default=16)
    args = parser.parse_args()
    print(describe())
    devices = device_ids(args.devices)
    markets = len({device_entry(i, d)["tags"]["market"] for i, d in enumerate(devices)})
    messages = backlog(devices, args.messages, args.per)
    print(
        f"{args.devices} devices in {markets} markets, {args.partitions} partitions; backlog of {len(messages)} "
        f"messages × {args.per} records; router + N workers as processes (zhijian ingest route / run)"
    )
    with tempfile.TemporaryDirectory(prefix="zhijian-scale-out-") as folder:
        tmp = Path(folder)
        devices_file = tmp / "devices.json"
        write_devices(devices_file, args.devices)
        with (
            MosquittoServer(tmp / "mosquitto") as mosquitto,
            NatsServer(tmp / "nats") as nats,
            InfluxServer(tmp / "influx") as influx,
        ):
            servers = {
                "mosquitto": mosquitto,
                "nats": nats,
                "influx": influx,
                "devices": devices,
                "devices_file": devices_file,
            }
            print(
                f"{'workers':>7} {'records/s':>10} {'drain s':>8} {'routed s':>9} {'µs/rec':>7} {'router':>7}"
                f" {'influxd':>7} {'nats':>5}  share per worker (stream messages / records / partitions / CPU s)"
            )
            rates: dict[int, list[float]] = {}
            direct: list[float] = []
            for _ in range(args.runs):
                rate, cpu_us = run_direct(args, tmp, servers, messages)
                direct.append(rate)
                print(
                    f"{'direct':>7} {rate:>10.0f} {'':>8} {'':>9} {cpu_us:>7.0f} {'':>7}  one `zhijian ingest run` "
                    "on Mosquitto",
                    flush=True,
                )
                for n in (int(x) for x in args.workers.split(",")):
                    r = run(n, args, tmp, servers, messages)
                    rates.setdefault(n, []).append(r["rate"])
                    share = ", ".join(
                        f"{w}: {s['messages']} / {s['records']} / {s['partitions']} / {s['cpu_s']:.1f}"
                        for w, s in r["shares"].items()
                    )
                    print(
                        f"{n:>7} {r['rate']:>10.0f} {r['drain_s']:>8.1f} {r['routed_s']:>9.1f} {r['worker_us']:>7.0f} "
                        f"{r['router_us']:>7.0f} {r['server_us']['influxd']:>7.0f} {r['server_us']['nats']:>5.0f}"
                        f"  {share}",
                        flush=True,
                    )
            print(
                f"median drain, records/s: direct {median(direct):.0f}; on NATS: "
                + ", ".join(f"{n} worker(s) {median(v):.0f}" for n, v in rates.items())
            )


if __name__ == "__main__":
    main()
