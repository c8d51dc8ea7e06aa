"""The MT-SICS driver against the scale firmware over a real pseudo-terminal."""

from __future__ import annotations

import base64
import logging
import secrets
import threading
import time
from pathlib import Path

import pytest

from device_profiles import builtin, check_record
from device_profiles.codecs import mtsics
from edge_agent import Agent, BrokerConfig, DeviceError, DeviceTimeout, MtSicsScale, MtSicsSource
from edge_agent.mtsics_driver import BadTransaction
from firmware_sim import Cheat, PtyLineServer, ScaleFirmware
from tests.support.waiting import wait_until

PROFILE = builtin("zj-pcs-30")


class Switchable:
    """Wraps a firmware: can go silent (unplugged), answer with garbage first, or answer ``instead``."""

    def __init__(self, firmware: ScaleFirmware) -> None:
        self.firmware = firmware
        self.silent = False
        self.garbage = b""
        self.instead: dict[str, bytes] = {}  # command -> the bytes sent once in place of its reply

    def __call__(self, line: mtsics.Line) -> bytes:
        if self.silent:
            return b""
        reply = self.instead.pop(line.command, None) or self.firmware.respond(line)
        reply = self.garbage + reply
        self.garbage = b""
        return reply


@pytest.fixture
def scale():
    fw = ScaleFirmware(PROFILE, seed=11, cheat=Cheat("price_math"))
    responder = Switchable(fw)
    lock = threading.Lock()
    with PtyLineServer(responder, lock=lock, name="t") as server:
        driver = MtSicsScale(PROFILE, server.port)
        yield fw, responder, driver, server
        driver.close()


def test_state_transactions_and_acks(scale) -> None:
    fw, _, driver, _ = scale
    state = driver.read_state(ts_ms=5)
    assert state["type"] == "scale_state" and state["accuracy_class"] == "III"
    assert (state["max_g"], state["e_mg"], state["d_mg"], state["min_g"]) == (30_000, 5_000, 5_000, 100)
    assert state["software_id"] == fw.software_id and state["calibration_events"] == fw.calibration_events
    assert driver.take_transaction() is None
    sold = [fw.sell(ts_ms=10 + i, plu="3001", true_net_mg=500_000 + i, unit_price_fen_per_kg=650) for i in range(3)]
    for expected in sold:
        got = driver.take_transaction()
        assert got == {"type": "sale", **expected}
        driver.ack_transaction(got["txn"])
    assert driver.take_transaction() is None


def test_tares_empty_pan_and_zero_counter_come_over_the_line(scale) -> None:
    fw, _, driver, _ = scale
    kw = {"ts_ms": 1, "plu": "3001", "true_net_mg": 800_000, "unit_price_fen_per_kg": 650}
    sold = [
        fw.sell(**kw, container_mg=203_000, tare_kind="weighed"),
        fw.sell(**kw, container_mg=6_000, tare_kind="preset", preset_tare_mg=5_000),
        fw.sell(**kw),
    ]
    sent = []
    for expected in sold:
        sent.append(fw.respond(mtsics.Line(("XTR",))))  # the bytes the driver is about to read
        got = driver.take_transaction()
        assert got == {"type": "sale", **expected}
        check_record(got)
        driver.ack_transaction(got["txn"])
    assert b' "weighed" ' in sent[0] and b' "preset" ' in sent[1]  # the string field travels quoted
    assert b' 3 7 "" "" ' in sent[2]  # no tare: after the counters, "" for tare_gross_mg and tare_kind
    assert "tare_kind" not in got and "tare_gross_mg" not in got and got["empty_counts"] > 0  # … left out


def test_a_sale_from_older_firmware_without_the_new_fields_is_still_a_sale(scale) -> None:
    _, responder, driver, _ = scale
    responder.instead["XTR"] = b'XTR A 17 1764000000000 "1001" 275000 0 12300 3383 1 800 125500 120000 3 7\r\n'
    got = driver.take_transaction()
    assert got is not None and got["txn"] == 17 and got["configuration_events"] == 7
    assert not {"tare_gross_mg", "tare_kind", "empty_counts", "zero_set_events"} & set(got)
    check_record(got)


def test_an_unknown_tare_kind_is_a_bad_transaction(scale) -> None:
    _, responder, driver, _ = scale
    reply = b'XTR A 17 1764000000000 "1001" 275000 5000 12300 3383 1 800 125600 120000 3 7 0 "keyed" 120002 41\r\n'
    responder.instead["XTR"] = reply
    with pytest.raises(BadTransaction, match="tare_kind") as info:
        driver.take_transaction()
    assert info.value.txn == 17 and info.value.line == reply


@pytest.mark.parametrize("profile_id", ["zj-fair-15", "zj-fair-30"])
def test_a_fair_scale_reports_the_receipts_tare_and_older_ones_parse_without_it(profile_id: str) -> None:
    profile = builtin(profile_id)
    fw = ScaleFirmware(profile, seed=2)
    reweigh = {
        "txn": 1, "ts": 1_764_000_000_000, "stall_device": "scale-0002", "sale_txn": 9, "plu": "1001",
        "claimed_mg": 500_000, "net_mg": 498_000, "claimed_tare_mg": 5_000,
    }  # fmt: skip
    fw.pending.append(reweigh)
    responder = Switchable(fw)
    with PtyLineServer(responder, lock=threading.Lock(), name="fair") as server:
        driver = MtSicsScale(profile, server.port)
        try:
            state = driver.read_state(ts_ms=1)
            assert (state["e_mg"], state["max_g"]) == (
                (2_000, 15_000) if profile_id == "zj-fair-15" else (5_000, 30_000)
            )
            assert driver.take_transaction() == {"type": "reweigh", **reweigh}
            responder.instead["XRW"] = b'XRW A 2 1764000000000 "scale-0002" 9 "1001" 500000 498000\r\n'
            old = driver.take_transaction()
            assert old is not None and "claimed_tare_mg" not in old and old["net_mg"] == 498_000
        finally:
            driver.close()


def test_garbage_before_a_reply_is_skipped_and_counted(scale) -> None:
    fw, responder, driver, _ = scale
    fw.sell(ts_ms=1, plu="1", true_net_mg=200_000, unit_price_fen_per_kg=1000)
    responder.garbage = b"\xff\xfe\x00noise\r\nS S 9.999 kg\r\n"
    got = driver.take_transaction()
    assert got is not None and got["txn"] == 1
    assert driver.frame_errors == {"not_ascii": 1}  # the non-ASCII line; the stale 'S' reply is skipped


def test_a_sale_breaking_the_contract_is_uploaded_as_evidence_with_the_bytes_the_scale_sent(scale) -> None:
    fw, _, _, server = scale
    source = MtSicsSource(PROFILE, server.port)
    try:
        assert [t.record["type"] for t in source.take()] == ["scale_state"]
        fw.sell(ts_ms=1, plu="10 01", true_net_mg=200_000, unit_price_fen_per_kg=1000)  # a PLU is a tag: no space
        sent = fw.respond(mtsics.Line(("XTR",)))
        assert b'"10 01"' in sent  # a quoted token holding a space: once a ValueError that killed the reader
        (taken,) = source.take()
        rec = taken.record
        assert rec["type"] == "raw_evidence" and rec["record_type"] == "sale" and rec["txn"] == taken.source_id == 1
        assert base64.b64decode(rec["bytes_b64"]) == sent and "plu" in rec["reason"]
        check_record(rec)  # a valid record of the contract: it travels like a sale
        assert source.dead_letters == []
        with pytest.raises(BadTransaction):  # not forgotten before the outbox has it …
            source.scale.take_transaction()
        source.confirm(taken)
        assert source.scale.take_transaction() is None  # … and then acknowledged, so the scale stops sending it
    finally:
        source.close()


def test_a_sale_beyond_max_is_a_sale_for_the_cloud_to_flag(scale) -> None:
    fw, _, driver, _ = scale
    fw.sell(ts_ms=1, plu="1", true_net_mg=242_000_000, unit_price_fen_per_kg=10)  # 242 kg on a 30 kg scale
    got = driver.take_transaction()
    assert got is not None and got["type"] == "sale" and got["net_mg"] == 242_000_000


@pytest.mark.parametrize(
    "reply",
    [
        b'XTR A 17 "pork belly"\r\n',  # too few values
        b'XTR A 17 1764000000000 "1001" 275000 0 12300 3383 1 800 125500 "1 20000" 3 7\r\n',  # a quoted number
        b"XTR Q 17\n",  # an unknown status, bare LF
    ],
)
def test_a_bad_transaction_reply_is_a_bad_transaction_with_its_raw_line(scale, reply: bytes) -> None:
    _, responder, driver, _ = scale
    responder.instead["XTR"] = reply
    with pytest.raises(BadTransaction) as info:
        driver.take_transaction()
    assert info.value.line == reply


@pytest.mark.parametrize(
    "reply",
    [
        b"XTR A 17 1764000000000 " + b"9" * 600 + b"\r\n",  # longer than any MT-SICS line
        b'XTR\tA\t17\t1764000000000\t"1001"\t275000\r\n',  # tabs for spaces
        b"XTR A 17 \x00\xff\xfe binary\r\n",
        b"XTR A " + b'"' * 41 + b' 17 1764000000000 "1001" 275000\r\n',  # unbalanced quotes before the number
        b"\xff\xfeXTR A 17 1764000000000\r\n",  # garbage before the reply
        b'XTR A 17 1764000000000 "1001" 3510000 \r\n',  # cut short: too few values
    ],
)
def test_an_unreadable_transaction_reply_is_a_bad_transaction_with_its_number(scale, reply: bytes) -> None:
    """Once a reply no line could be made of timed out: the scale was asked for that transaction forever and
    the ones behind it were never taken (found by an outside review). Now it is evidence, acknowledged."""
    _, responder, driver, _ = scale
    responder.instead["XTR"] = reply
    with pytest.raises(BadTransaction) as info:
        driver.take_transaction()
    assert (
        info.value.txn == 17 and info.value.line == reply[: len(info.value.line)] and info.value.line[:5] == reply[:5]
    )


def test_a_scale_with_one_unreadable_transaction_goes_on_with_the_next(scale) -> None:
    fw, responder, _, server = scale
    source = MtSicsSource(PROFILE, server.port)
    try:
        source.take()  # the scale_state
        for i in range(3):
            fw.sell(ts_ms=1, plu="1001", true_net_mg=200_000 + i, unit_price_fen_per_kg=1000)
        good = fw.respond(mtsics.Line(("XTR",)))
        responder.instead["XTR"] = good.replace(b" ", b"\t")  # transaction 1 comes garbled
        (evidence,) = source.take()
        assert evidence.record["type"] == "raw_evidence" and evidence.source_id == 1
        source.confirm(evidence)  # the scale forgets transaction 1 …
        txns = []
        for _ in range(2):
            for taken in source.take():
                txns.append(taken.record["txn"])
                source.confirm(taken)
        assert txns == [2, 3]  # … and the ones behind it come
    finally:
        source.close()


def test_silence_is_a_timeout_and_a_wrong_ack_an_error(scale) -> None:
    _, responder, driver, _ = scale
    with pytest.raises(DeviceError):
        driver.ack_transaction(99)  # 'XTA L': nothing to acknowledge
    responder.silent = True
    started = time.monotonic()
    with pytest.raises(DeviceTimeout):
        driver.take_transaction()
    assert time.monotonic() - started < PROFILE.serial.timeout_s + 0.5


def test_agent_logs_a_lost_scale_once_and_its_return_once(scale, tmp_path: Path, caplog, mosquitto) -> None:
    fw, responder, _, server = scale
    agent = Agent(
        device_id="scale-0009",
        key=secrets.token_bytes(32),
        sources=[MtSicsSource(PROFILE, server.port)],
        outbox_path=tmp_path / "o.sqlite",
        broker=BrokerConfig(port=mosquitto.port),
        poll_interval_s=0.02,
    )
    caplog.set_level(logging.INFO, logger="edge_agent")
    agent.start()
    try:
        responder.silent = True
        deadline = time.monotonic() + 10
        while all(agent.up.values()) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(2.5)  # several more failed polls
        responder.silent = False
        fw.sell(ts_ms=1, plu="1", true_net_mg=200_000, unit_price_fen_per_kg=1000)

        # the reader backs off up to 10 s between attempts: wait on the outcome, not on a guess at the pace
        assert wait_until(lambda: not fw.pending and agent.up[agent.sources[0].name], 60)
    finally:
        agent.stop(drain_s=2)
    msgs = [r.getMessage() for r in caplog.records]
    assert sum("went away" in m for m in msgs) == 1
    assert sum("is back" in m for m in msgs) == 1
    assert agent.taken >= 2  # the scale's state on reconnecting, and the sale
