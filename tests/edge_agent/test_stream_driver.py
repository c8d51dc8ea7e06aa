"""Stream devices over real pseudo-terminals: Toledo continuous, a GNSS receiver, a rapid-test analyzer."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from device_profiles import builtin, check_record
from edge_agent import DeviceTimeout
from edge_agent.stream_driver import GpsRecords, RapidTestRecords, StreamReader, ToledoRecords
from firmware_sim.pty_link import PtyPort
from firmware_sim.stream_devices import Faults, GnssReceiver, RapidTestAnalyzer, Route, ToledoIndicator

TOLEDO, GPS, RT = builtin("toledo-ind-60"), builtin("gps-nmea"), builtin("zj-rt-12")
CAPTURES = Path(__file__).resolve().parents[1] / "data" / "nmea"  # copied from shared/data/nmea (gpsd, BSD-2)


def collect(reader: StreamReader, converter, seconds: float) -> list[dict]:
    out: list[dict] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        out += converter.records(reader.frames(wait_s=0.1), ts_ms=int(time.time() * 1000))
    return out


def test_toledo_stable_weights_despite_garbage_and_bad_checksums() -> None:
    with ToledoIndicator(TOLEDO, seed=3, faults=Faults(garbage=0.2, bad_checksum=0.1)) as scale:
        conv = ToledoRecords(TOLEDO)
        reader = StreamReader(scale.port, conv.decode, serial_settings=TOLEDO.serial)
        records = collect(reader, conv, 4.0)
        reader.close()
    for r in records:
        check_record(r)
    stable = [r["net_mg"] for r in records if r["net_mg"] > 0]
    assert stable, "no stable weighing came through"
    assert set(stable) <= set(scale.loads_mg)  # never a weight the scale did not show as stable
    assert len(stable) == len(set(stable)), "one record per stable load"
    assert reader.frame_errors["bad_checksum"] > 0 and reader.frame_errors["garbage"] > 0


def test_gnss_receiver_along_a_route_and_invalid_fixes() -> None:
    route = Route([(31.1100, 121.3800), (31.1200, 121.3900), (31.1150, 121.4000)], speed_kmh=40)
    with GnssReceiver(GPS, route, seed=1, faults=Faults(bad_checksum=0.2)) as receiver:
        receiver.period_s = 0.1  # ten fixes a second of wall time
        conv = GpsRecords(GPS)
        reader = StreamReader(receiver.port, conv.decode, serial_settings=GPS.serial)
        records = collect(reader, conv, 2.0)
        receiver.no_fix = True
        collect(reader, conv, 0.3)  # a fix already on the line when the receiver lost it still arrives
        invalid = collect(reader, conv, 0.6)
        reader.close()
    assert len(records) >= 5 and invalid == []
    for r in records:
        check_record(r)
        assert 31.10 <= r["lat_deg"] <= 31.13 and 121.37 <= r["lon_deg"] <= 121.41
        assert r["speed_kmh"] == pytest.approx(40, abs=0.1) and r["satellites"] >= 7
    assert conv.assembler.dropped["invalid_fix"] >= 2
    assert reader.frame_errors["bad_checksum"] > 0


def test_real_capture_replayed_through_a_serial_line() -> None:
    pty = PtyPort()
    conv = GpsRecords(GPS)
    reader = StreamReader(pty.port, conv.decode, serial_settings=GPS.serial)
    reader.open()
    pty.write((CAPTURES / "bu353s4.nmea").read_bytes())
    records = collect(reader, conv, 0.5)
    reader.close()
    pty.close()
    assert len(records) == 25 and records[0]["lat_deg"] == pytest.approx(-37.7847883)


def test_rapid_test_results_and_a_silent_line() -> None:
    samples = [
        {"sample_id": f"S{i}", "name": "韭菜", "source_id": "stall-0012", "residue": r}
        for i, r in enumerate([0.05, 0.45, 0.7])
    ] + [{"sample_id": "S9", "name": "菠菜", "source_id": "base-1", "bad_control": True}]
    with RapidTestAnalyzer(RT, seed=2, faults=Faults(garbage=0.3)) as analyzer:
        conv = RapidTestRecords(RT)
        reader = StreamReader(analyzer.port, conv.decode, serial_settings=RT.serial, silence_s=0.5)
        sent = analyzer.run(samples, ts_ms=1_764_000_000_000)
        records = collect(reader, conv, 0.4)
        with pytest.raises(DeviceTimeout):
            collect(reader, conv, 1.5)
        reader.close()
    assert records == sent
    assert [r["result"] for r in records] == ["negative", "suspect", "positive", "invalid"]
