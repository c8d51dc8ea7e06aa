"""A simulated wet market: scales at stalls, some cheating, and customers buying at a steady rate.

Deterministic for a seed. Each scale is a :class:`ScaleFirmware` served on its own pseudo-terminal;
:meth:`Market.tick` makes one sale at a random stall. What customers buy, and in which bag or tray with
which tare, is :mod:`firmware_sim.purchases`; now and then a vendor presses ZERO. Some customers re-weigh
at the market's fair scale (a finer one, ``zj-fair-15``), which reads the goods as sold, in their
container, and subtracts the receipt's tare.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from device_profiles import Profile, builtin

from .pty_link import PtyLineServer
from .purchases import COMMODITIES, Purchase, commodity_medians, draw_purchase
from .scale import CHEAT_KEYS, CHEAT_KINDS, Cheat, ScaleFirmware

__all__ = ["COMMODITIES", "Market", "Stall"]
ZERO_PRESS_RATE = 0.02  # share of customers before whom the vendor presses ZERO


@dataclass
class Stall:
    """One stall: its device id, its scale firmware and the pty it is served on."""

    device_id: str
    firmware: ScaleFirmware
    server: PtyLineServer
    lock: threading.Lock
    cheat: Cheat | None
    sales: int = 0


@dataclass
class Market:
    """A market of ``n_scales`` stalls; ``cheaters`` of them cheat, one method after another
    (:data:`CHEAT_KINDS` in order: the eighth, ``preset_base``, needs eight cheaters)."""

    profile: Profile
    n_scales: int = 20
    cheaters: int = 8
    seed: int = 2026
    prefix: str = "scale"
    reweigh_rate: float = 0.08  # share of customers who re-weigh their purchase at the fair scale
    fair_profile: str = "zj-fair-15"
    stalls: list[Stall] = field(default_factory=list)
    rng: random.Random = field(init=False)
    fair: Stall = field(init=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        # reported magnitudes (docs/anti_cheat.md): chips +10–30 %, remote control 2 kg → 2.2–2.4 kg, kg→jin 2.15 vs 2.0
        ratios = {"cheat_chip": 1.10, "remote_control": 1.15, "recalibration": 1.075}
        for i in range(self.n_scales):
            cheat = None
            if i < self.cheaters:
                kind = CHEAT_KINDS[i % len(CHEAT_KINDS)]
                cheat = Cheat(kind, ratio=ratios.get(kind, 1.0), keyed=kind == "cheat_chip")
            firmware = ScaleFirmware(
                self.profile,
                seed=self.seed * 1000 + i,
                coefficient=float(self.rng.randint(18_000, 22_000)),
                zero_counts=self.rng.randint(100_000, 140_000),
                calibration_events=self.rng.randint(1, 5),
                configuration_events=self.rng.randint(3, 12),
                zero_set_events=self.rng.randint(50, 2_000),
                cheat=cheat,
            )
            lock = threading.Lock()
            device_id = f"{self.prefix}-{i + 1:04d}"
            if cheat is not None and cheat.keyed:
                firmware.press(CHEAT_KEYS)  # the vendor switches the chip on after the morning power-up
            server = PtyLineServer(firmware.respond, lock=lock, name=device_id)
            self.stalls.append(Stall(device_id, firmware, server, lock, cheat))
        fair = ScaleFirmware(builtin(self.fair_profile), seed=self.seed + 1)
        fair_lock = threading.Lock()
        self.fair = Stall("fair-0001", fair, PtyLineServer(fair.respond, lock=fair_lock, name="fair"), fair_lock, None)

    def start(self) -> Market:
        for stall in [*self.stalls, self.fair]:
            stall.server.start()
        return self

    def close(self) -> None:
        for stall in [*self.stalls, self.fair]:
            stall.server.close()

    def verification_facts(self, stall: Stall) -> dict[str, object]:
        """What a verifier recorded for the scale (before any re-calibration cheat)."""
        fw = stall.firmware
        recal = stall.cheat is not None and stall.cheat.kind == "recalibration"
        assert self.profile.metrology is not None
        return {
            "coefficient": fw.true_coefficient,
            "e_mg": self.profile.metrology.e_mg,
            "d_mg": self.profile.metrology.d_mg,
            "max_g": self.profile.metrology.max_g,
            "zero_counts": fw.verified_zero_counts,
            "accuracy_class": self.profile.metrology.accuracy_class,
            "calibration_events": fw.calibration_events - (1 if recal else 0),
            "configuration_events": fw.configuration_events,
        }

    @staticmethod
    def commodity_medians() -> dict[str, int]:
        """The market's published middle price per commodity (fen/kg)."""
        return commodity_medians()

    def tick(self, ts_ms: int | None = None) -> Stall:
        """One customer buys something at a random stall."""
        stall = self.rng.choice(self.stalls)
        purchase = draw_purchase(self.rng)
        now = ts_ms if ts_ms is not None else int(time.time() * 1000)
        press_zero = self.rng.random() < ZERO_PRESS_RATE
        with stall.lock:
            if press_zero:
                stall.firmware.zero()
            sale = purchase.sell_on(stall.firmware, ts_ms=now)
        stall.sales += 1
        if self.rng.random() < self.reweigh_rate:
            self.reweigh(stall, sale, purchase, ts_ms=now + 60_000)
        return stall

    def reweigh(self, stall: Stall, sale: dict[str, Any], purchase: Purchase, *, ts_ms: int) -> None:
        """The customer takes the goods, in their bag or tray, to the fair scale and scans the receipt: the
        fair scale reads the gross and subtracts the receipt's tare."""
        fw = self.fair.firmware
        with self.fair.lock:
            gross_mg, _ = fw.reading(purchase.true_net_mg + purchase.container_mg)
            fw.pending.append(
                {
                    "txn": fw.next_txn,
                    "ts": ts_ms,
                    "stall_device": stall.device_id,
                    "sale_txn": sale["txn"],
                    "plu": sale["plu"],
                    "claimed_mg": sale["net_mg"],
                    "net_mg": max(0, gross_mg - sale["tare_mg"]),
                    "claimed_tare_mg": sale["tare_mg"],
                }
            )
            fw.next_txn += 1
        self.fair.sales += 1
