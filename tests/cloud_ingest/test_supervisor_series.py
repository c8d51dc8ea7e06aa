"""What supervisors' panels read, on a real influxd through the real pipeline: place tags on every flag and
alert, flag evidence in grams and %, ``unverified_in_use`` once per scale and day, and the ``place`` and
``scale_status`` series written only when they change."""

from __future__ import annotations

import time
from typing import Any

import pytest

from anti_cheat import Engine
from cloud_ingest import DeviceFile, InfluxClient, Pipeline
from cloud_ingest.status_points import StatusWriter
from dashboards.series import SERIES
from device_profiles import encode
from tests.support.envelopes import BOOT, sale

T = 1_764_000_000_000
DAY = 86_400_000
FACT = {"coefficient": 20_000.0, "e_mg": 5_000, "calibration_events": 3, "configuration_events": 7}
PLACES = [
    {"kind": "district", "id": "futian", "name": "Futian", "district": "futian", "lat": 22.52, "lon": 114.05},
    {"kind": "market", "id": "futian-no1", "name": "Futian No 1", "district": "futian",
     "lat": 22.5431, "lon": 114.0579},
    {"kind": "stall", "id": "A-017", "market": "futian-no1", "name": "Futian No 1 A-017", "district": "futian",
     "lat": 22.5432, "lon": 114.058, "vendor": "Zhao Liu", "licence": "91440300708461136T"},
    {"kind": "stall", "id": "A-018", "market": "futian-no1", "name": "Futian No 1 A-018", "district": "futian",
     "lat": None, "lon": None, "vendor": "Qian Qi", "licence": "91440300708461136T"},
    {"kind": "base", "id": "guangming-1", "name": "Guangming farm", "district": "guangming",
     "lat": 22.74, "lon": 113.93},
]  # fmt: skip


def key(device: str) -> str:
    return (device.encode() * 32)[:32].hex()


def devices(**extra: dict[str, Any]) -> dict[str, dict[str, Any]]:
    docs: dict[str, dict[str, Any]] = {
        "scale-0001": {"profile": "zj-pcs-30", "scale": FACT,
                       "tags": {"district": "futian", "market": "futian-no1", "stall": "A-017"}},
        "scale-0002": {"profile": "zj-pcs-30", "unverified": "none",
                       "tags": {"district": "futian", "market": "futian-no1", "stall": "A-018"}},
        "fair-0001": {"profile": "zj-fair-30", "scale": FACT, "tags": {"district": "futian", "market": "futian-no1",
                                                                       "stall": "FAIR"}},
        "base-0001": {"profile": "soil-rs485", "tags": {"district": "guangming", "base": "guangming-1"}},
        "rt-0001": {"profile": "zj-rt-12", "tags": {"district": "futian", "vehicle": "van-7"}},
    }  # fmt: skip
    for device, over in extra.items():
        docs[device.replace("_", "-")] = {**docs[device.replace("_", "-")], **over}
    return {d: {**doc, "key": key(d)} for d, doc in docs.items()}


def pipeline(influx: InfluxClient, table: DeviceFile) -> Pipeline:
    return Pipeline(
        key_for=table.key_for,
        engine=Engine(table.facts),
        store=influx,
        tags_for=table.tags_for,
        vendor_for=table.vendor_for,
    )


def message(device: str, seq: int, records: list[dict[str, Any]]) -> tuple[str, bytes]:
    raw = encode(device=device, boot=BOOT, seq=seq, sent_ms=1, records=records, key=bytes.fromhex(key(device)))
    return f"zhijian/v1/{device}/data", raw


def tag_keys(influx: InfluxClient, measurement: str) -> set[str]:
    return {v[0] for s in influx.query(f'SHOW TAG KEYS FROM "{measurement}"') for v in s["values"]}


def field_types(influx: InfluxClient, measurement: str) -> dict[str, str]:
    return {v[0]: v[1] for s in influx.query(f'SHOW FIELD KEYS FROM "{measurement}"') for v in s["values"]}


def rapid_test(source: str) -> dict[str, Any]:
    return {"type": "rapid_test", "ts": T + 4_200, "channel": 1, "sample_id": "S1", "sample_name": "韭菜",
            "sample_category": "leafy", "source_id": source, "delta_a0": 0.6, "delta_at": 0.2,
            "inhibition_pct": 66.7, "result": "positive", "retest": 0, "reagent_lot": "L1",
            "reagent_expiry": "2027-01-01", "temperature_c": 25.0, "operator": "wang"}  # fmt: skip


def test_alerts_carry_the_place_of_the_sample_and_the_base(influx: InfluxClient) -> None:
    table = DeviceFile(devices())
    pipe = pipeline(influx, table)
    gps = {"type": "gps", "ts": T + 4_000, "lat_deg": 22.5431, "lon_deg": 114.0579}
    pipe.process([message("rt-0001", 1, [gps, rapid_test("scale-0001"), {**rapid_test("nobody"), "channel": 2}])])
    faults = [{"type": "sensor_fault", "ts": T, "channel": "soil.moisture_pct", "fault": "timeout"}]
    pipe.process([message("base-0001", 1, faults)])
    assert {"district", "market", "stall", "base", "vehicle", "kind", "severity", "device", "subject"} <= tag_keys(
        influx, "alert"
    )
    rows = {r["subject"]: r for r in influx.rows('SELECT * FROM "alert"')}
    positive = rows["scale-0001"]
    assert (positive["district"], positive["market"], positive["stall"], positive["vehicle"]) == (
        "futian", "futian-no1", "A-017", "van-7",
    )  # fmt: skip
    assert positive["device"] == "rt-0001" and positive["lat_deg"] == pytest.approx(22.5431)
    unknown = rows["nobody"]  # a sample whose origin the registry does not know: the vehicle's district
    assert (unknown["district"], unknown["market"], unknown["vehicle"]) == ("futian", None, "van-7")
    base = rows["base-0001"]
    assert (base["district"], base["base"], base["kind"], base["stall"]) == (
        "guangming",
        "guangming-1",
        "sensor_fault",
        None,
    )
    by_tag = influx.rows("SELECT count(seq) FROM \"alert\" WHERE market = 'futian-no1'")
    assert by_tag[0]["count"] == 1  # a market supervisor's filter


def test_flags_carry_place_vendor_and_evidence_in_grams(influx: InfluxClient) -> None:
    table = DeviceFile(devices(), places=PLACES)
    pipe = pipeline(influx, table)
    reweigh = {
        "type": "reweigh",
        "ts": T,
        "txn": 1,
        "stall_device": "scale-0001",
        "claimed_mg": 500_000,
        "net_mg": 482_000,
    }
    chip = sale(txn=2, ts=T + 1, raw_counts=120_000 + 5_000)  # counts 250 g, display 275 g
    flags = pipe.process([message("fair-0001", 1, [reweigh]), message("scale-0001", 1, [chip])])
    assert {f.rule for f in flags} == {"reweigh_error", "coefficient"}
    assert {"district", "market", "stall", "device", "rule", "severity"} <= tag_keys(influx, "flag")
    types = field_types(influx, "flag")
    assert {types[f] for f in ("evidence_g", "evidence_pct", "receipt_g", "reference_g", "limit_g", "value")} == {
        "float"
    }
    assert (types["sales"], types["seq"], types["vendor"]) == ("integer", "integer", "string")
    rows = {r["rule"]: r for r in influx.rows('SELECT * FROM "flag"')}
    rw = rows["reweigh_error"]
    assert (rw["evidence_g"], rw["receipt_g"], rw["reference_g"], rw["sales"]) == (18.0, 500.0, 482.0, 1)
    assert rw["evidence_pct"] == pytest.approx(3.73) and rw["stall"] == "A-017" and rw["record_device"] == "fair-0001"
    assert rw["reason_en"].startswith("re-weighed on the fair scale: 482 g against 500 g on the receipt, 18 g")
    assert (rw["vendor"], rw["licence"]) == ("Zhao Liu", "91440300708461136T")
    coef = rows["coefficient"]
    assert (
        coef["evidence_g"] == 25.0 and coef["evidence_pct"] == 10.0 and "load cell measured 250 g" in coef["reason_en"]
    )


def test_a_scale_selling_unverified_is_flagged_once_a_day_not_per_sale(influx: InfluxClient) -> None:
    table = DeviceFile(devices(scale_0001={"unverified": T + 3 * DAY}))  # its latest verification failed then
    pipe = pipeline(influx, table)
    pipe.process([message("scale-0002", 1, [sale(txn=k, ts=T + k) for k in range(5)])])
    pipe.process([message("scale-0002", 6, [sale(txn=9, ts=T + 60_000)])])  # the same day: no second flag
    pipe.process([message("scale-0002", 7, [sale(txn=10, ts=T + DAY)]), message("scale-0001", 1, [sale(ts=T)])])
    pipe.process([message("scale-0001", 2, [sale(ts=T + 4 * DAY)])])
    rows = influx.rows("SELECT * FROM \"flag\" WHERE rule = 'unverified_in_use'")
    assert [(r["device"], r["seq"], r["sales"], r["severity"]) for r in rows] == [
        ("scale-0002", 1, 5, "medium"),
        ("scale-0002", 7, 1, "medium"),
        ("scale-0001", 2, 1, "medium"),
    ]
    assert rows[0]["reason_en"] == "selling with no verification on record" and "value" not in {
        k for k, v in rows[0].items() if v is not None
    }
    assert rows[2]["reason_en"] == "selling 1 days after failing its verification" and rows[2]["stall"] == "A-017"


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_places_every_period_and_scale_status_when_it_changes(influx: InfluxClient) -> None:
    table = DeviceFile(devices(), places=PLACES)
    pipe = pipeline(influx, table)
    pipe.track_status = True
    clock = Clock(T / 1000 + 10)
    writer = StatusWriter(
        influx,
        lambda: table,
        lambda: pipe.engine.facts,
        pipe.seen_ms,
        pipe.last_sale_ms,
        period_s=60,
        online_s=600,
        clock=clock,
    )
    assert writer.tick() == 4 + 3  # the places with a position, every scale (fair scales are scales)
    assert {"kind", "id", "name", "district", "market"} <= tag_keys(influx, "place")
    assert {"device", "district", "market", "stall", "vendor"} <= tag_keys(influx, "scale_status")
    assert field_types(influx, "place") == {
        "lat": "float",
        "lon": "float",
        "vendor": "string",
        "licence": "string",
        "open_flags": "integer",
        "open_alerts": "integer",
    }
    places = {r["id"]: r for r in influx.rows('SELECT * FROM "place"')}
    assert set(places) == {"futian", "futian-no1", "A-017", "guangming-1"}  # A-018 has no position
    assert (places["A-017"]["lat"], places["A-017"]["market"], places["A-017"]["vendor"]) == (
        22.5432,
        "futian-no1",
        "Zhao Liu",
    )
    assert (places["futian-no1"]["open_flags"], places["futian-no1"]["open_alerts"]) == (0, 0)
    assert (places["guangming-1"]["open_alerts"], places["guangming-1"]["open_flags"]) == (0, None)
    status = {r["device"]: r for r in influx.rows('SELECT * FROM "scale_status"')}
    assert status["scale-0002"]["verified"] == 0 and status["scale-0002"]["online"] == 0
    assert status["scale-0001"]["verified"] == 1 and status["scale-0001"]["vendor"] == "Zhao Liu"

    clock.t += 30
    pipe.process([message("scale-0001", 1, [sale(ts=T + 5_000)])])
    assert writer.tick() == 0  # not a period yet
    clock.t += 40
    pipe.seen_ms["scale-0001"] = int(clock.t * 1000)  # the pipeline's wall clock, as this test's clock
    assert writer.tick() == 4 + 1  # every place again, and only the scale that sold
    types = field_types(influx, "scale_status")
    assert {types[f] for f in ("online", "verified", "last_sale_ms", "last_seen_ms")} == {"integer"}
    assert set(types) <= set(SERIES["scale_status"].fields)  # the names the boards read, no others
    last = influx.rows(
        "SELECT last(online) AS online, last(last_sale_ms) AS sold FROM \"scale_status\" WHERE device = 'scale-0001'"
    )
    assert (last[0]["online"], last[0]["sold"]) == (1, T + 5_000)
    clock.t += 601
    assert writer.tick() == 4 + 1  # it went quiet: offline
    clock.t += 60
    assert writer.tick() == 4 and writer.points_written == 7 + 5 + 5 + 4
    # a place is in any time range a map panel picks: one point a period
    assert len(influx.rows("SELECT lat FROM \"place\" WHERE id = 'futian-no1'")) == 4


def test_the_boards_sum_what_the_ingest_writes(influx: InfluxClient) -> None:
    """The city board's "scales online" panel sums ``online`` (InfluxQL refuses sum() of booleans) and the
    map reads each market's and base's last position and counts, on the writer's own points."""
    from dashboards import Expansion, boards

    table = DeviceFile(devices(), places=PLACES)
    pipe = pipeline(influx, table)
    pipe.track_status = True
    now = T / 1000 + 10
    writer = StatusWriter(influx, lambda: table, lambda: pipe.engine.facts, pipe.seen_ms, pipe.last_sale_ms,
                          clock=Clock(now))  # fmt: skip
    pipe.seen_ms.update({"scale-0001": int(now * 1000), "fair-0001": int(now * 1000)})
    assert writer.tick() == 7
    window = Expansion(from_ms=int(now * 1000) - 3_600_000, to_ms=int(now * 1000) + 60_000)
    by_uid = {b.uid: b for b in boards()}
    online = next(p for p in by_uid["zj-city"].panels if "online" in p.title).queries[0]
    assert influx.rows(window.expand(online.text))[0]["online"] == 2  # scale-0002 has said nothing
    geomap = next(p for p in by_uid["zj-map"].panels if p.type == "geomap")
    markets, bases = (influx.rows(window.expand(q.text)) for q in geomap.queries[:2])
    assert [(r["id"], r["lat"], r["open_flags"]) for r in markets] == [("futian-no1", 22.5431, 0)]
    assert [(r["id"], r["open_alerts"]) for r in bases] == [("guangming-1", 0)]


def test_status_survives_influxdb_away_and_writes_again(influx: InfluxClient) -> None:
    table = DeviceFile(devices(), places=PLACES)
    away = InfluxClient("http://127.0.0.1:9", "x", retries=0, timeout_s=0.5)
    clock = Clock(T / 1000)
    writer = StatusWriter(away, lambda: table, lambda: table.facts, {}, {}, clock=clock)
    assert writer.tick() == 0 and writer.write_errors == 1
    writer.store = influx
    clock.t += 60
    assert writer.tick() == 7  # everything again


def test_a_reloaded_table_keeps_what_was_seen_and_writes_only_the_changes(influx: InfluxClient) -> None:
    first = DeviceFile(devices(), places=PLACES)
    current = [first]
    seen: dict[str, int] = {"scale-0001": int(T)}
    clock = Clock(T / 1000 + 1)
    writer = StatusWriter(influx, lambda: current[0], lambda: current[0].facts, seen, {}, clock=clock)
    assert writer.tick() == 7
    moved = [dict(p, lat=22.6) if p["id"] == "futian-no1" else p for p in PLACES]
    current[0] = DeviceFile(devices(scale_0002={"scale": FACT, "unverified": None}), places=moved)
    clock.t += 60
    assert writer.tick() == 4 + 1  # the places, the scale now verified
    status = influx.rows("SELECT last(verified) AS v FROM \"scale_status\" WHERE device = 'scale-0002'")
    assert status[0]["v"] == 1
    market = influx.rows("SELECT last(lat) AS lat FROM \"place\" WHERE id = 'futian-no1'")
    assert market[0]["lat"] == 22.6  # where it moved to


def test_a_large_first_write_is_spread_over_calls(influx: InfluxClient) -> None:
    table = DeviceFile(devices(), places=PLACES)
    clock = Clock(T / 1000)
    writer = StatusWriter(influx, lambda: table, lambda: table.facts, {}, {}, clock=clock, max_lines=2)
    assert writer.tick() == 4 + 2  # the places, then two scales a call, without waiting for the period
    assert writer.tick() == 1 and writer.tick() == 0
    assert len(influx.rows('SELECT * FROM "scale_status"')) == 3


def test_the_map_counts_the_last_day_and_alert_state_follows_the_base(influx: InfluxClient) -> None:
    """open_flags and open_alerts on the places, from what the real pipeline wrote; alert_state from an
    alert's opening and its base's acknowledgement, read by the bases board as Grafana expands it."""
    import json

    from cloud_ingest.device_messages import take_reply
    from cloud_ingest.place_findings import PlaceFindings
    from dashboards import Expansion, Variable, boards

    table = DeviceFile(devices(), places=PLACES)
    pipe = pipeline(influx, table)
    pipe.track_status = True
    clock = Clock(T / 1000 + 10)
    pipe.findings = PlaceFindings(clock)
    writer = StatusWriter(influx, lambda: table, lambda: pipe.engine.facts, pipe.seen_ms, pipe.last_sale_ms,
                          clock=clock, findings=pipe.findings,
                          open_alerts=pipe.alert_book.open_by_device)  # fmt: skip
    reweigh = {"type": "reweigh", "ts": T, "txn": 1, "stall_device": "scale-0001", "claimed_mg": 500_000,
               "net_mg": 482_000}  # fmt: skip
    chip = sale(txn=2, ts=T + 1, raw_counts=120_000 + 5_000)
    old = sale(txn=3, ts=T - 2 * DAY, raw_counts=120_000 + 5_000)  # a backlog sent late: history, not open
    flags = pipe.process([message("fair-0001", 1, [reweigh]), message("scale-0001", 1, [old, chip])])
    assert sorted(f.rule for f in flags) == ["coefficient", "coefficient", "coefficient_cusum", "reweigh_error"]
    gps = {"type": "gps", "ts": T + 4_000, "lat_deg": 22.5431, "lon_deg": 114.0579}
    pipe.process([message("rt-0001", 1, [gps, rapid_test("scale-0001"), {**rapid_test("nobody"), "channel": 2}])])
    fault = {"type": "sensor_fault", "ts": T, "channel": "soil.moisture_pct", "fault": "timeout"}
    pipe.process([message("base-0001", 1, [fault])])

    def places() -> dict[str, dict[str, Any]]:
        rows = influx.rows('SELECT last(open_flags) AS f, last(open_alerts) AS a FROM "place" GROUP BY "id"')
        return {r["id"]: r for r in rows}

    assert writer.tick() == 4 + 3
    now = places()
    # three flags of today at A-017 (the backlog's is not counted), one positive of its sample, one base fault
    assert (now["A-017"]["f"], now["futian-no1"]["f"], now["futian-no1"]["a"], now["guangming-1"]["a"]) == (3, 3, 1, 1)
    assert pipe.findings.flags.ignored == 1 and "futian" not in now  # a district carries no counts

    types = field_types(influx, "alert_state")
    assert types == SERIES["alert_state"].fields and tag_keys(influx, "alert_state") <= set(SERIES["alert_state"].tags)
    states = influx.rows('SELECT * FROM "alert_state"')
    assert sorted((r["kind"], r["state"], r["market"] or "") for r in states) == [
        ("rapid_test_positive", "open", ""),  # the sample nobody knows: the vehicle's district only
        ("rapid_test_positive", "open", "futian-no1"),
        ("sensor_fault", "open", ""),
    ]
    positive = next(r for r in states if r["market"])
    base_fault = next(r for r in states if r["kind"] == "sensor_fault")
    assert (positive["state"], positive["open"], positive["actor"], positive["market"], positive["stall"]) == (
        "open", 1, "rt-0001", "futian-no1", "A-017",
    )  # fmt: skip
    assert (base_fault["base"], base_fault["district"], base_fault["open"]) == ("guangming-1", "guangming", 1)

    bases = next(b for b in boards() if b.uid == "zj-bases")
    unacknowledged = next(p for p in bases.panels if "not acknowledged" in p.title).queries[0]
    window = Expansion(
        from_ms=T - 3_600_000,
        to_ms=int(time.time() * 1000) + 60_000,
        variables={"base": Variable.many("base", ["guangming-1"])},
    )
    assert influx.rows(window.expand(unacknowledged.text))[0]["open"] == 1

    # the base acknowledges on its reply topic (the network thread): written between batches, not before
    reply = {"id": "op-1", "ok": True, "ack_alert": {"alert_id": base_fault["id"], "by": "Li Ming", "ts": T}}
    assert take_reply(pipe, "base-0001", json.dumps(reply).encode())
    assert len(influx.rows('SELECT * FROM "alert_state"')) == len(states)
    assert pipe.flush_pending() == 1 and pipe.flush_pending() == 0
    last = influx.rows(
        'SELECT last("state") AS state, last("open") AS open, last("actor") AS actor FROM "alert_state"'
        f" WHERE id = '{base_fault['id']}'"
    )[0]
    assert (last["state"], last["open"], last["actor"]) == ("acknowledged", 0, "Li Ming")

    assert influx.rows(window.expand(unacknowledged.text))[0]["open"] == 0

    clock.t += 60
    assert writer.tick() == 4 + 0 and places()["guangming-1"]["a"] == 0  # a fault closes on acknowledgement
    clock.t += DAY / 1000
    writer.tick()
    now = places()
    assert (now["A-017"]["f"], now["futian-no1"]["f"], now["futian-no1"]["a"]) == (0, 0, 0)  # a day later


def test_an_unchanged_scale_is_written_again_after_an_hour(influx: InfluxClient) -> None:
    """So that an hour's panel range holds every scale's status (an idle scale overdue for verification)."""
    table = DeviceFile(devices(), places=PLACES)
    clock = Clock(T / 1000)
    writer = StatusWriter(influx, lambda: table, lambda: table.facts, {}, {}, clock=clock, max_lines=2)
    assert writer.tick() == 4 + 2 and writer.tick() == 1  # a first write, spread
    clock.t += 1_800
    assert writer.tick() == 4  # the places only: nothing changed
    clock.t += 1_800
    assert writer.tick() == 4 + 2 and writer.tick() == 1 and writer.tick() == 0  # an hour on: every scale again
    assert len(influx.rows("SELECT online FROM \"scale_status\" WHERE device = 'scale-0002'")) == 2


def test_an_acknowledgement_heard_while_influxdb_is_away_is_spooled_and_the_queue_is_bounded(
    influx: InfluxClient,
) -> None:
    import json

    from cloud_ingest.device_messages import take_reply
    from cloud_ingest.pending_points import PendingPoints

    table = DeviceFile(devices())
    away = InfluxClient("http://127.0.0.1:9", "x", retries=0, timeout_s=0.5)
    pipe = pipeline(away, table)
    fault = {"type": "sensor_fault", "ts": T, "channel": "ph", "fault": "stuck"}
    pipe.process([message("base-0001", 1, [fault])])  # InfluxDB away: the batch is spooled
    ((_, _, alert_id),) = pipe.alert_book.open_alerts()
    reply = {"ack_alert": {"alert_id": alert_id, "by": "Li"}}
    assert take_reply(pipe, "base-0001", json.dumps(reply).encode())
    assert pipe.flush_pending() == 1 and len(pipe.pending_states) == 0  # to the spool, behind the batch
    pipe.store = influx
    assert pipe.replay_spool()
    rows = influx.rows(f"SELECT state, actor FROM \"alert_state\" WHERE id = '{alert_id}'")
    assert [(r["state"], r["actor"]) for r in rows] == [("open", "base-0001"), ("acknowledged", "Li")]

    queue = PendingPoints(max_points=3)
    for n in range(5):
        queue.put(f"line {n}")
    taken = queue.take()
    assert taken == ["line 2", "line 3", "line 4"] and queue.dropped == 2 and len(queue) == 0
    queue.put("line 5")
    queue.put_back(taken)
    assert queue.take() == ["line 2", "line 3", "line 4"] and queue.dropped == 3  # put back first; line 5 out


def test_a_device_added_to_the_index_between_reloads_does_not_stop_the_status(influx: InfluxClient) -> None:
    """The device index grows in place (the anti-cheat adds a scale the registry names unverified before
    the table holds it): status points go on, for the new scale too once a reload brings it."""
    first = DeviceFile(devices(), places=PLACES)
    current = [first]
    seen: dict[str, int] = {"scale-0001": int(T)}
    clock = Clock(T / 1000 + 1)
    writer = StatusWriter(influx, lambda: current[0], lambda: current[0].facts, seen, {}, clock=clock)
    assert writer.tick() > 0
    first.index.add("scale-0099")  # appended in place, past the writer's arrays
    seen["scale-0099"] = int(T) + 1000
    clock.t += 60
    writer.tick()  # no IndexError: the appended device waits for its reload
    added = {"profile": "zj-pcs-30", "scale": FACT, "tags": {"district": "futian", "market": "futian-no1"}}
    current[0] = DeviceFile({**devices(), "scale-0099": {**added, "key": key("scale-0099")}}, places=PLACES)
    seen["scale-0099"] = int(T) + 2000
    clock.t += 60
    writer.tick()
    rows = influx.rows("SELECT last(online) AS online FROM \"scale_status\" WHERE device = 'scale-0099'")
    assert rows and rows[0]["online"] == 1
