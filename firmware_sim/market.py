"""A simulated wet market: scales at stalls, some cheating, and customers buying at a steady rate.

Deterministic for a seed. Each scale is a :class:`ScaleFirmware` served on its own pseudo-terminal;
:meth:`Market.tick` makes one sale at a random stall. Commodities and price ranges are those of a
Chinese wet market (fen per kilogram).
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from device_profiles import Profile, builtin

from .pty_link import PtyLineServer
from .scale import CHEAT_KEYS, CHEAT_KINDS, Cheat, ScaleFirmware

# (PLU, name, lowest and highest unit price in fen/kg, typical mass range in g)
COMMODITIES: tuple[tuple[str, str, int, int, int, int], ...] = (
    ("1001", "pork belly 五花肉", 2_600, 3_600, 300, 1_500),
    ("1002", "beef 牛肉", 6_800, 9_000, 250, 1_200),
    ("2001", "grass carp 草鱼", 1_600, 2_400, 800, 2_500),
    ("2002", "shrimp 基围虾", 6_000, 12_000, 200, 800),
    ("3001", "tomato 番茄", 500, 1_000, 300, 1_500),
    ("3002", "cabbage 白菜", 200, 500, 800, 3_000),
    ("3003", "garlic 大蒜", 1_000, 1_800, 100, 500),
    ("4001", "apple 苹果", 800, 1_600, 500, 2_500),
    ("5001", "tofu 豆腐", 400, 800, 200, 1_000),
)


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
    """A market of ``n_scales`` stalls; ``cheaters`` of them cheat, one method after another."""

    profile: Profile
    n_scales: int = 20
    cheaters: int = 7
    seed: int = 2026
    prefix: str = "scale"
    reweigh_rate: float = 0.08  # share of customers who re-weigh their purchase at the fair scale
    stalls: list[Stall] = field(default_factory=list)
    rng: random.Random = field(init=False)
    fair: Stall = field(init=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        # magnitudes from METROLOGY.md: chips +10–30 %, remote control 2 kg → 2.2–2.4 kg, kg→jin 2.15 vs 2.0
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
                cheat=cheat,
            )
            lock = threading.Lock()
            device_id = f"{self.prefix}-{i + 1:04d}"
            if cheat is not None and cheat.keyed:
                firmware.press(CHEAT_KEYS)  # the vendor switches the chip on after the morning power-up
            server = PtyLineServer(firmware.respond, lock=lock, name=device_id)
            self.stalls.append(Stall(device_id, firmware, server, lock, cheat))
        fair = ScaleFirmware(builtin("zj-fair-30"), seed=self.seed + 1)
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
        return {plu: (lo + hi) // 2 for plu, _name, lo, hi, _g_lo, _g_hi in COMMODITIES}

    def tick(self, ts_ms: int | None = None) -> Stall:
        """One customer buys something at a random stall."""
        stall = self.rng.choice(self.stalls)
        plu, _name, lo, hi, g_lo, g_hi = self.rng.choice(COMMODITIES)
        price = self.rng.randint(lo // 10, hi // 10) * 10
        mass_mg = self.rng.randint(g_lo, g_hi) * 1000
        now = ts_ms if ts_ms is not None else int(time.time() * 1000)
        with stall.lock:
            sale = stall.firmware.sell(ts_ms=now, plu=plu, true_net_mg=mass_mg, unit_price_fen_per_kg=price)
        stall.sales += 1
        if self.rng.random() < self.reweigh_rate:
            self.reweigh(stall, sale, mass_mg, ts_ms=now + 60_000)
        return stall

    def reweigh(self, stall: Stall, sale: dict[str, Any], true_mg: int, *, ts_ms: int) -> None:
        """The customer takes the goods to the fair scale and scans the receipt."""
        fw = self.fair.firmware
        with self.fair.lock:
            found_mg, _ = fw.reading(true_mg)
            fw.pending.append(
                {
                    "txn": fw.next_txn,
                    "ts": ts_ms,
                    "stall_device": stall.device_id,
                    "sale_txn": sale["txn"],
                    "plu": sale["plu"],
                    "claimed_mg": sale["net_mg"],
                    "net_mg": found_mg,
                }
            )
            fw.next_txn += 1
        self.fair.sales += 1
