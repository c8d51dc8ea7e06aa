"""The ingest pipeline on a real influxd: rejections by reason with dead letters, dedupe, flags."""

from __future__ import annotations

import numpy as np
import pytest

from anti_cheat import Engine, ScaleFacts
from cloud_ingest import DeviceFile, InfluxClient, Pipeline, StoreUnavailable
from cloud_ingest.sequences import SequenceBook
from cloud_ingest.spool import Spool
from device_profiles import encode
from tests.support.envelopes import BOOT, KEY, TOPIC, keys, make, payload, sale


def test_bad_payloads_are_counted_by_reason_and_kept(influx: InfluxClient) -> None:
    pipe = make(influx)
    good = payload()
    batch = [
        (TOPIC, good),
        ("zhijian/v1/scale-0001/status", good),
        (TOPIC, b"not json at all"),
        (TOPIC, good.replace(b"3383", b"3384")),
        ("zhijian/v1/scale-0002/data", good),
        (TOPIC, payload(records=[sale(net_mg="heavy")])),
    ]
    pipe.process(batch)
    assert pipe.rejected == {
        "bad_topic": 1,
        "missing_tag": 1,
        "bad_tag": 1,
        "unknown_device": 1,
        "bad_record": 1,
    }
    assert pipe.accepted_records == 1 and pipe.received == 6
    kept = pipe.dead_letters.rows()
    assert [r for _, r, _ in kept] == ["bad_topic", "missing_tag", "bad_tag", "unknown_device", "bad_record"]
    assert kept[1][2] == b"not json at all"
    assert len(influx.rows("SELECT * FROM sale")) == 1


def test_redelivery_is_stored_once(influx: InfluxClient) -> None:
    pipe = make(influx)
    raw = encode(device="scale-0001", boot=BOOT, seq=7, sent_ms=1, records=[sale(txn=i) for i in range(4)], key=KEY)
    pipe.process([(TOPIC, raw)])
    pipe.process([(TOPIC, raw), (TOPIC, raw)])
    assert sorted(r["seq"] for r in influx.rows("SELECT seq FROM sale")) == [7, 8, 9, 10]


def test_flags_are_stored_with_reasons(influx: InfluxClient) -> None:
    pipe = make(influx)
    honest = sale(raw_counts=120_000 + 5_500)  # 0.275 kg at 20 000 counts/kg
    chip = sale(txn=2, raw_counts=120_000 + 5_000)  # counts say 0.250 kg, display says 0.275 kg
    flags = pipe.process([(TOPIC, payload(records=[honest, chip]))])
    assert [(f.seq, f.rule) for f in flags] == [(11, "coefficient")]
    rows = influx.rows("SELECT * FROM flag")
    assert len(rows) == 1 and rows[0]["rule"] == "coefficient" and rows[0]["seq"] == 11
    assert " g " in rows[0]["reason_en"] and "克" in rows[0]["reason_zh"]  # in grams, as people read them
    assert rows[0]["evidence_g"] == 25.0 and rows[0]["value"] == 25_000.0  # and the rule's own mg kept


def test_store_down_spools_and_a_full_spool_refuses(tmp_path) -> None:
    dead = InfluxClient("http://127.0.0.1:9", "x", retries=0, timeout_s=0.5)
    spool = Spool(tmp_path / "spool.sqlite", quota_bytes=400)
    pipe = Pipeline(key_for=keys, engine=Engine(ScaleFacts()), store=dead, spool=spool)
    pipe.process([(TOPIC, payload())])  # durable in the spool: the caller may acknowledge
    assert spool.lines == 1 and pipe.spooled_points == 1
    with pytest.raises(StoreUnavailable, match="spool at"):
        pipe.process([(TOPIC, payload(records=[sale(txn=i) for i in range(1, 40)]))])
    assert pipe.replay_spool() is False and spool.lines == 1


def test_a_message_influxdb_refuses_is_dead_lettered_and_the_rest_stored(influx: InfluxClient) -> None:
    pipe = make(influx)
    # the database already holds net_mg as a float (say, from an old schema): new integer points conflict
    influx.write(["sale,device=scale-0009 net_mg=1.5 1764000000000000000"])  # same shard as the sale
    other = encode(
        device="scale-0001",
        boot=BOOT,
        seq=50,
        sent_ms=1,
        records=[
            {"type": "soil", "ts": 2, "moisture_pct": 30, "temperature_c": 21, "conductivity_us_cm": 400, "ph": 6.5}
        ],
        key=KEY,
    )
    pipe.process([(TOPIC, payload()), (TOPIC, other)])
    assert pipe.rejected == {"store_rejected": 1}
    assert pipe.dead_letters.rows()[0][1] == "store_rejected"
    assert pipe.accepted_records == 1
    soil = influx.rows("SELECT * FROM soil")
    assert len(soil) == 1 and soil[0]["moisture_pct"] == 30.0  # the integer 30 went in as a float field
    influx.write(["soil,device=scale-0001 moisture_pct=31.5 3"])  # and later floats still fit


def test_tag_values_that_would_break_line_protocol_are_refused(influx: InfluxClient) -> None:
    pipe = make(influx)
    pipe.process([(TOPIC, payload(records=[sale(plu="10 01")])), (TOPIC, payload(records=[sale(plu="x\\")]))])
    assert pipe.rejected == {"bad_record": 2}


def test_replays_are_refused_gaps_counted_and_the_book_survives_a_restart(influx: InfluxClient, tmp_path) -> None:
    book_path = tmp_path / "seq.sqlite"
    pipe = Pipeline(
        key_for=keys, engine=Engine(ScaleFacts()), store=influx, sequences=SequenceBook(book_path, window=10)
    )

    def msg(seq: int, n: int = 1) -> tuple[str, bytes]:
        return TOPIC, encode(
            device="scale-0001",
            boot=BOOT,
            seq=seq,
            sent_ms=1,
            records=[sale(txn=seq + i, ts=1_764_000_000_000 + seq + i) for i in range(n)],
            key=KEY,
        )

    pipe.process([msg(1, 3), msg(4), msg(10)])  # 5 … 9 never came: a gap of 5
    pipe.process([msg(4)])  # a redelivery within the window: stored again, harmlessly
    assert pipe.sequences.gaps["scale-0001"] == 5 and pipe.sequences.late["scale-0001"] == 1
    pipe.process([msg(30)])
    pipe.process([msg(2)])  # 28 below the highest, window 10: old traffic replayed
    assert pipe.rejected == {"replayed": 1}
    restarted = Pipeline(
        key_for=keys, engine=Engine(ScaleFacts()), store=influx, sequences=SequenceBook(book_path, window=10)
    )
    restarted.process([msg(3)])
    assert restarted.rejected == {"replayed": 1} and restarted.sequences.highest["scale-0001"] == 30
    assert sorted(r["seq"] for r in influx.rows("SELECT seq FROM sale")) == [1, 2, 3, 4, 10, 30]


def test_a_revoked_device_is_refused(influx: InfluxClient) -> None:
    pipe = Pipeline(key_for=keys, engine=Engine(ScaleFacts()), store=influx, revoked=lambda d: d == "scale-0001")
    pipe.process([(TOPIC, payload())])
    assert pipe.rejected == {"revoked_device": 1} and pipe.dead_letters.rows()[0][1] == "revoked_device"


def test_rapid_test_positives_raise_alerts_at_the_vehicle_position(influx: InfluxClient) -> None:
    pipe = make(influx)
    sent = []
    pipe.alert_sink = sent.append
    t = 1_764_000_000_000
    fixes = [{"type": "gps", "ts": t + k * 1000, "lat_deg": 22.54 + k / 1000, "lon_deg": 114.06} for k in range(10)]

    def test(channel: int, a0: float, at: float, reported: str) -> dict:
        return {
            "type": "rapid_test",
            "ts": t + 4_200,
            "channel": channel,
            "sample_id": f"S{channel}",
            "sample_name": "韭菜",
            "sample_category": "leafy",
            "source_id": "scale-0007",
            "delta_a0": a0,
            "delta_at": at,
            "inhibition_pct": 0.0,
            "result": reported,
            "retest": 0,
            "reagent_lot": "L1",
            "reagent_expiry": "2027-01-01",
            "temperature_c": 25.0,
            "operator": "wang",
        }

    tests = [
        test(1, 0.6, 0.2, "positive"),
        test(2, 0.6, 0.33, "negative"),
        test(3, 0.6, 0.5, "negative"),
        test(4, 0.2, 0.2, "invalid"),
    ]
    raw = encode(device="scale-0001", boot=BOOT, seq=1, sent_ms=1, records=fixes + tests, key=KEY)
    pipe.process([(TOPIC, raw)])
    assert [(a.kind, a.subject, a.detail["agrees"]) for a in sent] == [
        ("rapid_test_positive", "scale-0007", True),
        ("rapid_test_suspect", "scale-0007", False),
    ]
    assert sent[0].detail["lat_deg"] == pytest.approx(22.544)  # the fix nearest the sampling time
    assert sent[0].detail["inhibition_pct"] == pytest.approx(66.67)
    rows = influx.rows("SELECT * FROM alert")
    assert sorted(r["kind"] for r in rows) == ["rapid_test_positive", "rapid_test_suspect"]
    assert pipe.alerts_by_kind == {"rapid_test_positive": 1, "rapid_test_suspect": 1}


def test_points_carry_the_registry_tags(influx: InfluxClient) -> None:
    files = DeviceFile(
        {
            "scale-0001": {
                "key": KEY.hex(),
                "tags": {
                    "district": "futian",
                    "market": "futian-no1",
                    "stall": "A-017",
                    "colour": "red",
                    "bad": "has space",
                },
            }
        }
    )
    pipe = Pipeline(key_for=files.key_for, engine=Engine(ScaleFacts()), store=influx, tags_for=files.tags_for)
    pipe.process([(TOPIC, payload())])
    (row,) = influx.rows("SELECT * FROM sale WHERE \"market\" = 'futian-no1'")
    assert (row["district"], row["stall"]) == ("futian", "A-017")
    assert "colour" not in row and "bad" not in row  # only the known, line-protocol-safe tags


def test_rapid_test_verdict_edges() -> None:
    from cloud_ingest.rapid_tests import RESULTS, verdicts

    a0 = np.array([0.60, 0.60, 0.60, 0.60, 0.29, 0.30])
    at = np.array([0.30, 0.31, 0.36, 0.37, 0.00, 0.30])
    pct, codes = verdicts(a0, at)
    assert [RESULTS[c] for c in codes] == ["positive", "suspect", "suspect", "negative", "invalid", "negative"]
    assert pct.tolist() == [50.0, 48.33, 40.0, 38.33, 0.0, 0.0]


def test_flags_carry_the_scales_place(influx: InfluxClient) -> None:
    files = DeviceFile(
        {
            "scale-0001": {
                "key": KEY.hex(),
                "tags": {"district": "futian", "market": "futian-no1", "stall": "A-017"},
                "scale": {"coefficient": 20_000.0, "e_mg": 5000, "calibration_events": 3, "configuration_events": 7},
            }
        }
    )
    pipe = Pipeline(key_for=files.key_for, engine=Engine(files.facts), store=influx, tags_for=files.tags_for)
    pipe.process([(TOPIC, payload(records=[sale(raw_counts=120_000 + 5_000)]))])  # the chip: 0.250 kg counted
    (row,) = influx.rows("SELECT * FROM flag WHERE market = 'futian-no1'")
    assert (row["rule"], row["stall"], row["district"]) == ("coefficient", "A-017", "futian")


def test_acknowledgements_name_what_the_cloud_has_for_good(influx: InfluxClient) -> None:
    pipe = Pipeline(key_for=keys, engine=Engine(ScaleFacts()), store=influx, sequences=SequenceBook(window=10))
    stored = encode(device="scale-0001", boot=BOOT, seq=100, sent_ms=1, records=[sale(), sale(txn=2)], key=KEY)
    refused = payload(seq=102, records=[sale(net_mg="heavy")])  # a dead letter whose tag held
    forged = payload(seq=103, key=b"w" * 32)  # not the device's: never acknowledged
    old = payload(seq=5)  # replayed: refused for its age, maybe never stored, so the device keeps it
    prepared = pipe.prepare([(TOPIC, stored), (TOPIC, refused), (TOPIC, forged), (TOPIC, old)])
    pipe.commit(prepared)
    assert prepared.acks == {"scale-0001": [(100, 101), (102, 102)]}
    assert pipe.rejected == {"bad_record": 1, "bad_tag": 1, "replayed": 1}
