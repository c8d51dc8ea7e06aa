"""Data for the panel tests: the demo's own run (registry, broker, agents over ptys, the real ingest) into a
database of the session's influxd, and a copy of it plus the few points a ten-second demo cannot make,
in the schema the ingest writes (:mod:`dashboards.series`): a scale whose verification is overdue, a
planting-base alert's hours of history (opened 5 h ago, one still open, one acknowledged 1 h ago) with a
sensor fault, and the registry's case counts (the demo runs no registry API for the case reporter).
Everything else a panel reads — sales, re-weighs, flags with their evidence, rapid-test alerts with their
place tags, ``alert_state`` openings, ``scale_status``, ``place`` with its open flags and alerts — is what
the demo wrote."""

from __future__ import annotations

import io
import time
from pathlib import Path

from rich.console import Console

from cloud_ingest import InfluxClient
from cloud_ingest.case_reporter import case_line
from cloud_ingest.derived_points import alert_state_line, field_text, tag_text
from zhijian_cli.demo import DemoOptions, run_demo

DEMO_DB, PLUS_DB = "dash_demo", "dash_demo_plus"
H = 3_600_000
BASE = {"district": "guangming", "base": "gm-veg-01"}  # the demo's planting base


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
    return f"{measurement},{tag_text(tags)} {field_text(fields)} {ts_ms * 1_000_000}"


def extra_points(demo: InfluxClient, now_ms: int) -> list[str]:
    """What a short demo cannot make, at the demo's market and planting base."""
    (market,) = demo.rows('SELECT last("lat") FROM "place" WHERE "kind" = \'market\' GROUP BY "id", "district"')
    place = {"district": market["district"], "market": market["id"], "stall": "Z-099"}
    lines = [
        _line(  # an extra scale of the demo's market whose verification fell due yesterday
            "scale_status",
            {"device": "scale-0099", "vendor": "Vendor 99", **place},
            {
                "online": 0,
                "verified": 0,
                "last_seen_ms": now_ms - 48 * H,
                "last_verification_ms": now_ms - 365 * 24 * H,
                "verification_due_ms": now_ms - 24 * H,
            },
            now_ms - 60_000,
        ),
        _line(
            "alert",
            {"device": "base-0001", "kind": "sensor_threshold", "severity": "medium", "subject": "base-0001", **BASE},
            {
                "id": "base-0001:soil.moisture_pct:1",
                "seq": 3,
                "channel": "soil.moisture_pct",
                "value": 12.5,
                "limit": 20.0,
                "side": "low",
            },
            now_ms - 5 * H,
        ),
        _line(
            "sensor_fault",
            {"device": "base-0001", "channel": "ph", "fault": "stuck", **BASE},
            {"seq": 4, "detail": "stuck"},
            now_ms - H,
        ),
    ]
    # alert a: opened 5 h ago, still open; alert b: opened 5 h ago, acknowledged by the base 1 h ago
    for alert, state, actor, at in (
        ("a", "open", "base-0001", now_ms - 5 * H),
        ("b", "open", "base-0001", now_ms - 5 * H),
        ("b", "acknowledged", "base manager Li", now_ms - H),
    ):
        lines.append(
            alert_state_line(
                f"base-0001:{alert}", "sensor_threshold", "medium", BASE, state=state, actor=actor, ts_ms=at
            )
        )
    # the registry's case counts as the case reporter writes them (the demo runs no registry API)
    for key, count in (
        (("", market["district"], "open"), 2),
        (("", market["district"], "assigned"), 1),
        ((market["id"], market["district"], "open"), 2),
        ((market["id"], market["district"], "assigned"), 1),
    ):
        lines.append(case_line(key, count, (now_ms - 60_000) * 1_000_000))
    return lines


def make_plus(influx_url: str) -> tuple[InfluxClient, InfluxClient, int]:
    """The demo database, its copy with the extra points, and the time they were written at."""
    demo = InfluxClient(influx_url, DEMO_DB)
    plus = InfluxClient(influx_url, PLUS_DB)
    plus.create_database()
    # the demo's points, tags kept (GROUP BY *), into the other database
    plus.query(
        f'SELECT * INTO "{PLUS_DB}"."autogen".:MEASUREMENT FROM "{DEMO_DB}"."autogen"./.*/ GROUP BY *', method="POST"
    )
    now_ms = int(time.time() * 1000)
    plus.write(extra_points(demo, now_ms))
    return demo, plus, now_ms
