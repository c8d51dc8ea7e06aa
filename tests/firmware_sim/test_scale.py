"""The scale firmware: honest within MPE, each cheat with its signature, faults, and its TCP link."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from device_profiles import amount_fen, builtin
from device_profiles.codecs import mtsics
from device_profiles.metrology import mpe_mg
from edge_agent import DeviceTimeout, MtSicsScale
from firmware_sim import CHEAT_KINDS, Cheat, ScaleFirmware, TcpLineServer
from firmware_sim.scale import CHEAT_KEYS, TRANSACTION_MEMORY

PROFILE = builtin("zj-pcs-30")


def implied_mg(txn: dict, coefficient: float) -> float:
    return (txn["raw_counts"] - txn["zero_counts"]) / coefficient * 1_000_000


@settings(max_examples=200)
@given(st.integers(100, 30_000), st.integers(0, 10_000))
def test_honest_readings_are_within_the_initial_mpe(grams: int, seed: int) -> None:
    fw = ScaleFirmware(PROFILE, seed=seed)
    txn = fw.sell(ts_ms=1, plu="1", true_net_mg=grams * 1000, unit_price_fen_per_kg=1000)
    limit = mpe_mg(np.array([grams * 1000]), np.array([5000]), np.array([2]), in_service=False)[0]
    assert abs(txn["net_mg"] - grams * 1000) <= limit + 2500  # MPE plus rounding to d
    assert txn["amount_fen"] == amount_fen(txn["net_mg"], 1000)
    assert abs(implied_mg(txn, fw.true_coefficient) - txn["net_mg"]) <= 2500 + 500


def sell(fw: ScaleFirmware, grams: int = 2000, price: int = 1000) -> dict:
    return fw.sell(ts_ms=1_000, plu="1", true_net_mg=grams * 1000, unit_price_fen_per_kg=price)


def test_keyed_cheat_chip_toggles_on_its_key_sequence_and_reboot_clears_it() -> None:
    fw = ScaleFirmware(PROFILE, seed=1, cheat=Cheat("cheat_chip", ratio=1.2, keyed=True), noise_sigma_e=0)
    assert sell(fw)["net_mg"] == 2_000_000
    fw.press("12" + CHEAT_KEYS)
    txn = sell(fw)
    assert txn["net_mg"] == 2_400_000 and implied_mg(txn, fw.true_coefficient) == pytest.approx(2_000_000, abs=500)
    fw.respond(mtsics.Line(("@",)))  # power cycle
    assert sell(fw)["net_mg"] == 2_000_000 and fw.boots == 2


@pytest.mark.parametrize("kind", CHEAT_KINDS)
def test_each_cheat_shows_its_signature(kind: str) -> None:
    cheat = Cheat(kind, ratio=1.15)
    fw = ScaleFirmware(PROFILE, seed=2, cheat=cheat, noise_sigma_e=0)
    txn = sell(fw, grams=2000, price=1200)
    implied = implied_mg(txn, fw.true_coefficient)
    if kind == "cheat_chip":
        assert txn["net_mg"] == 2_300_000 and implied == pytest.approx(2_000_000, abs=500)
    elif kind == "remote_control":
        assert txn["net_mg"] == 2_300_000 and implied == pytest.approx(2_300_000, abs=500)
    elif kind == "recalibration":
        assert txn["net_mg"] == 2_300_000 and fw.coefficient == pytest.approx(fw.true_coefficient / 1.15)
        assert implied_mg(txn, fw.coefficient) == pytest.approx(2_300_000, abs=600)
        assert txn["calibration_events"] == 4
    elif kind == "price_math":
        assert txn["amount_fen"] == amount_fen(txn["net_mg"], 1200) + cheat.extra_fen
    elif kind == "throw":
        assert not txn["stable"] or txn["stable_ms"] < 400
    elif kind == "zero_trick":
        assert txn["net_mg"] == 3_500_000 and implied == pytest.approx(3_500_000, abs=500)
        assert fw.verified_zero_counts - txn["zero_counts"] == pytest.approx(fw.true_coefficient * 1.5, abs=1)
    elif kind == "price_scaling":
        assert txn["unit_price_fen_per_kg"] == 12 and txn["net_mg"] == 200_000_000
    elif kind == "preset_base":
        while not fw.last_cheated:  # toggled per customer
            txn = sell(fw, grams=2000, price=1200)
        assert txn["net_mg"] == 2_100_000
        assert implied_mg(txn, fw.true_coefficient) == pytest.approx(2_100_000, abs=2500)
        assert txn["empty_counts"] - txn["zero_counts"] == pytest.approx(fw.true_coefficient * 0.1, abs=25)
    else:
        raise AssertionError(f"no signature checked for {kind}")


def test_clock_skew_and_full_memory() -> None:
    fw = ScaleFirmware(PROFILE, clock_skew_ms=-3_600_000)
    assert sell(fw)["ts"] == 1_000 - 3_600_000
    fw.pending.extend([{}] * (TRANSACTION_MEMORY - 1))
    with pytest.raises(OverflowError):
        sell(fw)


def test_driver_over_tcp_and_a_slow_link() -> None:
    fw = ScaleFirmware(PROFILE, seed=3)
    with TcpLineServer(fw.respond, lock=threading.Lock(), name="tcp") as server:
        driver = MtSicsScale(PROFILE, server.url)
        sold = sell(fw)
        assert driver.take_transaction() == {"type": "sale", **sold}
        server.reply_delay_s = PROFILE.serial.timeout_s + 0.2
        with pytest.raises(DeviceTimeout):
            driver.ack_transaction(sold["txn"])
        driver.close()
