"""How long the ingest's registry reload takes, and how long the cheap "did it change?" check takes.

The ingest looks at the registry's revision every ZHIJIAN_REGISTRY_REFRESH_S and reloads its whole view
(keys derived again, tags, facts of the last passed verification) only when it changed. Both run on the
batch thread, so both delay a batch. Measured on SQLite (a file) with N scales, each provisioned and
verified, median of 5; and the start of a registry-backed ingest's devices without and with a current
snapshot (cloud_ingest/device_snapshot.py):

    .venv/bin/python benchmarks/registry_reload.py [--devices 10000]
"""

from __future__ import annotations

import argparse
import datetime as dt
import tempfile
import time
from pathlib import Path

from machine import describe, median
from sqlalchemy import insert

from device_registry import models as m
from device_registry.broker_files import hash_password
from device_registry.credentials import derive_integrity_key, key_fingerprint
from device_registry.db import connect, upgrade
from zhijian_cli.ingest_devices import registry_devices

SECRET = bytes(range(32))


def fill(url: str, n: int) -> None:
    """N scales at N stalls of one market, each with a credential and a passed verification (bulk inserts)."""
    engine = connect(url)
    stored = hash_password("same-for-all")  # hashing 10 000 passwords is not what is measured
    now = dt.datetime.now(dt.UTC)
    with engine.begin() as conn:
        conn.execute(insert(m.District), [{"id": "futian", "name": "Futian"}])
        conn.execute(insert(m.Market), [{"id": "m1", "name": "M1", "district_id": "futian", "operator": "Op"}])
        conn.execute(
            insert(m.Stall),
            [
                {"id": i + 1, "market_id": "m1", "code": f"A-{i}", "vendor": "V", "business_licence": "x"}
                for i in range(n)
            ],
        )
        conn.execute(
            insert(m.Device),
            [
                {
                    "id": f"scale-{i:05d}",
                    "profile": "zj-pcs-30",
                    "kind": "scale",
                    "serial_no": "S",
                    "stall_id": i + 1,
                    "registered_at": now,
                }
                for i in range(n)
            ],
        )
        conn.execute(
            insert(m.Credential),
            [
                {
                    "device_id": f"scale-{i:05d}",
                    "key_version": 1,
                    "password_hash": stored,
                    "issued_at": now,
                    "key_fingerprint": key_fingerprint(derive_integrity_key(SECRET, f"scale-{i:05d}", 1)),
                }
                for i in range(n)
            ],
        )
        conn.execute(
            insert(m.Verification),
            [
                {
                    "device_id": f"scale-{i:05d}",
                    "certificate_no": "C",
                    "verifying_body": "B",
                    "verified_on": now.date(),
                    "due_on": now.date(),
                    "seal_no": "S",
                    "accuracy_class": "III",
                    "max_g": 30000,
                    "e_mg": 5000,
                    "d_mg": 5000,
                    "coefficient": 20000.0,
                    "zero_counts": 1,
                    "calibration_events": 3,
                    "configuration_events": 7,
                    "technician": "T",
                    "reference_weights": [],
                    "passed": True,
                    "recorded_at": now,
                }
                for i in range(n)
            ],
        )
        conn.execute(
            insert(m.AuditEntry),
            [{"actor": "bench", "action": "fill", "entity": "bench", "entity_id": "x", "detail": {}, "at": now}],
        )
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=10_000)
    args = parser.parse_args()
    print(f"machine: {describe()}")
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'registry.sqlite'}"
        upgrade(url)
        fill(url, args.devices)
        snapshot = Path(tmp) / "devices_snapshot.npz"
        t0 = time.perf_counter()
        live = registry_devices(url, SECRET, refresh_s=0, snapshot=snapshot)
        first_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        again = registry_devices(url, SECRET, refresh_s=0, snapshot=snapshot)
        snapshot_s = time.perf_counter() - t0
        assert again.key_for("scale-00000") == live.key_for("scale-00000")
        assert live.key_for("scale-00000") == derive_integrity_key(SECRET, "scale-00000", 1)
        checks, reloads = [], []
        for _ in range(5):
            t0 = time.perf_counter()
            changed = live.refresh()
            checks.append(time.perf_counter() - t0)
            assert not changed
            t0 = time.perf_counter()
            assert live.refresh(force=True)
            reloads.append(time.perf_counter() - t0)
    n = args.devices
    print(
        f"{n} scales on SQLite: change check {median(checks) * 1000:.2f} ms, "
        f"full reload {median(reloads) * 1000:.0f} ms ({median(reloads) / n * 1e6:.0f} µs per device), median of 5"
    )
    print(
        f"  first start (registry read, snapshot written) {first_s:.1f} s, "
        f"next start (snapshot of the current revision) {snapshot_s:.2f} s"
    )


if __name__ == "__main__":
    main()
