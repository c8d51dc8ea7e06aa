"""Data for the panel tests: the demo's own run (registry, broker, agents over ptys, the real ingest) into a
database of the session's influxd, and a copy of it plus a few points in the schema that
:mod:`dashboards.series` expects from work in progress (place tags on alerts, evidence on flags, per-scale
status, positions, alert state)."""

from __future__ import annotations

import io
import time
from pathlib import Path

from rich.console import Console

from cloud_ingest import InfluxClient
from device_profiles.influx_schema import escape_tag, format_field
from zhijian_cli.demo import DemoOptions, run_demo

DEMO_DB, PLUS_DB = "dash_demo", "dash_demo_plus"
H = 3_600_000


def run_demo_into(influx_url: str, data_dir: Path) -> tuple[int, str]:
    """Run the demo for a few seconds against ``influx_url``; (sales stored, what it printed)."""
    out = io.StringIO()
    console = Console(file=out, width=160)
    opts = DemoOptions(
        duration_s=10, scales=8, cheaters=7, sales_per_s=20, data_dir=data_dir, influx_url=influx_url, influx_db=DEMO_DB
    )
    stored = run_demo(opts, console)
    return stored, out.getvalue()


def _line(measurement: str, tags: dict[str, str], fields: dict[str, object], ts_ms: int) -> str:
    tag_text = ",".join(f"{k}={escape_tag(v)}" for k, v in sorted(tags.items()))
    field_text = ",".join(f"{k}={format_field(v)}" for k, v in fields.items())
    return f"{measurement},{tag_text} {field_text} {ts_ms * 1_000_000}"


def expected_points(demo: InfluxClient, now_ms: int) -> list[str]:
    """Points in the expected schema for the devices and places the demo has."""
    scales = demo.rows('SELECT last("amount_fen") FROM "sale" GROUP BY "device", "district", "market", "stall"')
    lines = []
    for i, s in enumerate(scales):
        place = {"district": s["district"], "market": s["market"], "stall": s["stall"]}
        due = now_ms - 24 * H if i == 0 else now_ms + 300 * 24 * H  # the first scale's verification is overdue
        lines.append(
            _line(
                "scale_status",
                {"device": s["device"], "vendor": f"Vendor_{i + 1}", **place},
                {
                    "online": 1,
                    "last_sale_ms": now_ms,
                    "last_verification_ms": now_ms - 30 * 24 * H,
                    "verification_due_ms": due,
                },
                now_ms - 60_000,
            )
        )
        lines.append(
            _line(
                "flag",
                {"device": s["device"], "rule": "reweigh_error", "severity": "high", **place},
                {
                    "seq": 1,
                    "value": 42.0,
                    "limit": 20.0,
                    "reason_en": "short weight at the fair scale",
                    "reason_zh": "复称短秤",
                    "evidence_g": -42.0,
                    "evidence_pct": -4.2,
                },
                now_ms - 120_000,
            )
        )
        lines.append(
            _line(
                "reweigh",
                {"device": "fair-0001", "stall_device": s["device"], **place},
                {"seq": 1, "txn": 1, "claimed_mg": 1_000_000, "net_mg": 958_000},
                now_ms - 120_000,
            )
        )
    market = scales[0]
    base = {"district": "guangming", "base": "gm-veg-01"}
    lines += [
        _line(
            "place",
            {"kind": "market", "id": market["market"], "name": "Futian_No._1", "district": "futian"},
            {"lat": 22.5431, "lon": 114.0579, "open_flags": 7, "open_alerts": 1},
            now_ms - 60_000,
        ),
        _line(
            "place",
            {"kind": "base", "id": "gm-veg-01", "name": "Guangming_base", "district": "guangming"},
            {"lat": 22.7480, "lon": 113.9350, "open_flags": 0, "open_alerts": 2},
            now_ms - 60_000,
        ),
    ]
    for kind, pct in (("rapid_test_positive", 66.7), ("rapid_test_suspect", 44.0)):
        lines.append(
            _line(
                "alert",
                {
                    "device": "vehicle-0001",
                    "kind": kind,
                    "severity": "high",
                    "subject": market["device"],
                    "district": "futian",
                    "market": market["market"],
                    "stall": market["stall"],
                    "vehicle": "rt-van-01",
                },
                {
                    "id": f"vehicle-0001:{kind}",
                    "seq": 9,
                    "sample_id": "S00009",
                    "sample_name": "韭菜 leek",
                    "inhibition_pct": pct,
                    "result": kind.removeprefix("rapid_test_"),
                    "agrees": True,
                    "lat_deg": 22.544,
                    "lon_deg": 114.06,
                    "action": "retest",
                },
                now_ms - 90_000,
            )
        )
    lines.append(
        _line(
            "alert",
            {"device": "base-0001", "kind": "sensor_threshold", "severity": "medium", "subject": "base-0001", **base},
            {
                "id": "base-0001:soil.moisture_pct:1",
                "seq": 3,
                "channel": "soil.moisture_pct",
                "value": 12.5,
                "limit": 20.0,
                "side": "low",
            },
            now_ms - 5 * H,
        )
    )
    lines.append(
        _line(
            "sensor_fault",
            {"device": "base-0001", "channel": "ph", "fault": "stuck", **base},
            {"seq": 4, "detail": "stuck"},
            now_ms - H,
        )
    )
    # alert a: opened 5 h ago, still open; alert b: opened 5 h ago, acknowledged 1 h ago
    for alert, state, open_, at in (
        ("a", "open", 1, now_ms - 5 * H),
        ("b", "open", 1, now_ms - 5 * H),
        ("b", "acknowledged", 0, now_ms - H),
    ):
        lines.append(
            _line(
                "alert_state",
                {"id": f"base-0001:{alert}", "kind": "sensor_threshold", "severity": "medium", **base},
                {"state": state, "open": open_, "actor": "supervisor_li"},
                at,
            )
        )
    return lines


def make_plus(influx_url: str) -> tuple[InfluxClient, InfluxClient, int]:
    """The demo database, its copy with the expected-schema points, and the time they were written at."""
    demo = InfluxClient(influx_url, DEMO_DB)
    plus = InfluxClient(influx_url, PLUS_DB)
    plus.create_database()
    # the demo's points, tags kept (GROUP BY *), into the other database
    plus.query(
        f'SELECT * INTO "{PLUS_DB}"."autogen".:MEASUREMENT FROM "{DEMO_DB}"."autogen"./.*/ GROUP BY *', method="POST"
    )
    now_ms = int(time.time() * 1000)
    plus.write(expected_points(demo, now_ms))
    return demo, plus, now_ms
