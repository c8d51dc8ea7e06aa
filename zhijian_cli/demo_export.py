"""``zhijian demo --export DIR``: the demo's scale data in the input format of ``zhijian anti-cheat score``.

What is exported is what the run stored, read back from InfluxDB (the system of record, not the
simulator's memory): every sale, re-weigh, check weighing and scale state of this demo's devices since
the run started, turned back into contract records (a point holds its record's fields, its ``seq`` and
``ts × 10⁶ + seq mod 10⁶`` as its time) and then into the engine's input rows by the engine's own mapping
(:func:`anti_cheat.columns.rows_of_records`). Beside them goes the registry's facts of every verified
scale (no keys, no passwords) as a :class:`anti_cheat.facts.RegistryDocument`, so that::

    zhijian anti-cheat score DIR/transactions.jsonl --registry DIR/registry.json

scores the run again offline, with the same engine the ingest ran.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from anti_cheat.columns import rows_of_records
from cloud_ingest import InfluxClient
from device_profiles.influx_schema import SEQ_SLOTS
from device_profiles.records import RECORD_TYPES, RecordType

EXPORTED = ("sale", "reweigh", "check_weighing", "scale_state")  # the record types the engine reads
PAGE = 5_000  # rows per query: a server with a max-row-limit still returns everything
TRANSACTIONS = "transactions.jsonl"
REGISTRY = "registry.json"


@dataclass(frozen=True)
class Exported:
    transactions: Path
    registry: Path
    rows: int
    scales: int


def _value(rtype: RecordType, name: str, value: Any) -> Any:
    """A point's value as the record had it: tags come back as strings."""
    if isinstance(value, str) and rtype.fields[name].kind == "int":
        return int(value)
    return value


def _records(influx: InfluxClient, rtype_name: str, since_ms: int) -> Iterator[tuple[str, int, dict[str, Any]]]:
    rtype = RECORD_TYPES[rtype_name]
    offset = 0
    while True:
        # our own measurement name and integers: nothing from outside goes into the query
        where = f"time >= {since_ms * SEQ_SLOTS} LIMIT {PAGE} OFFSET {offset}"
        series = influx.query(f'SELECT * FROM "{rtype.measurement}" WHERE {where}')  # noqa: S608
        values = [dict(zip(s["columns"], v, strict=True)) for s in series for v in s["values"]]
        for point in values:
            record: dict[str, Any] = {"type": rtype_name, "ts": int(point["time"]) // SEQ_SLOTS}
            for name in rtype.fields:
                if point.get(name) is not None:
                    record[name] = _value(rtype, name, point[name])
            yield str(point["device"]), int(point["seq"]), record
        if len(values) < PAGE:
            return
        offset += PAGE


def registry_facts(url: str, key_secret: bytes, commodity_median: dict[str, int]) -> dict[str, Any]:
    """The registry at ``url`` as a RegistryDocument: the facts of every verified scale (what the ingest
    judged with; keys are left out) and the price priors."""
    from device_registry.db import connect, sessions
    from device_registry.ingest_view import ingest_view

    engine = connect(url)
    try:
        with sessions(engine)() as db:
            view = ingest_view(db, key_secret)
    finally:
        engine.dispose()
    scales = {device: doc["scale"] for device, doc in view.devices.items() if "scale" in doc}
    return {"scales": scales, "commodity_median": commodity_median}


def export_run(
    influx: InfluxClient,
    devices: Collection[str],
    since_ms: int,
    registry: dict[str, Any],
    out: Path,
) -> Exported:
    """Write ``out/transactions.jsonl`` (rows of ``devices`` since ``since_ms``, in time order) and
    ``out/registry.json`` (``registry``: scales' facts and price priors)."""
    records = [r for name in EXPORTED for r in _records(influx, name, since_ms) if r[0] in devices]
    records.sort(key=lambda r: (r[2]["ts"], r[0], r[1]))  # arrival order, as near as stored times tell it
    out.mkdir(parents=True, exist_ok=True)
    transactions = out / TRANSACTIONS
    rows = rows_of_records(records)
    with transactions.open("w", encoding="utf-8") as f:
        for row in rows:
            clean = {k: v for k, v in row.items() if v is not None and k != "type"}
            f.write(json.dumps(clean, ensure_ascii=False) + "\n")
    registry_path = out / REGISTRY
    registry_path.write_text(json.dumps(registry, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    return Exported(transactions, registry_path, len(rows), len(registry.get("scales", {})))
