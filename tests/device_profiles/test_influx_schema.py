"""Records → line protocol; on a real influxd, retries overwrite and distinct records never collide."""

from __future__ import annotations

from cloud_ingest import InfluxClient
from device_profiles.influx_schema import envelope_lines, escape_tag, format_field, point_time_ns, record_line
from tests.device_profiles.test_envelope import sale


def test_line_shape() -> None:
    line = record_line("scale-0001", 42, sale(), {"market": "Futian No.1"})
    assert line.startswith("sale,device=scale-0001,market=Futian\\ No.1,plu=1001 seq=42i,")
    fields, ts = line.split(" ")[-2], line.split(" ")[-1]
    assert "seq=42i" in fields and "net_mg=275000i" in line and "stable=t" in line
    assert int(ts) == 1_764_000_000_000 * 1_000_000 + 42


def test_escaping() -> None:
    assert escape_tag("a,b=c d") == "a\\,b\\=c\\ d"
    assert format_field('say "hi" \\ bye') == '"say \\"hi\\" \\\\ bye"'
    assert format_field(1.5) == "1.5" and format_field(3) == "3i" and format_field(False) == "f"


def test_point_time_separates_seqs_within_a_millisecond() -> None:
    times = {point_time_ns(1_000, s) for s in range(10_000)}
    assert len(times) == 10_000


def test_retries_overwrite_and_equal_timestamps_do_not_collide(influx: InfluxClient) -> None:
    records = [sale(txn=i) for i in range(1, 6)]  # five sales, all with the same ts
    lines = envelope_lines("scale-0001", 100, records)
    influx.write(lines)
    influx.write(lines)  # a redelivery
    influx.write(envelope_lines("scale-0001", 102, records[2:3]))  # a retry of one record alone
    influx.write(envelope_lines("scale-0002", 100, records))  # another device, same seqs and ts
    rows = influx.rows("SELECT seq, txn FROM sale GROUP BY device")
    assert len(rows) == 10
    assert sorted((r["device"], r["seq"]) for r in rows) == sorted(
        (d, s) for d in ("scale-0001", "scale-0002") for s in range(100, 105)
    )
