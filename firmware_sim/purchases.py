"""What customers of a Chinese wet market buy, and how it goes on the scale's pan.

Commodities and price ranges are those of a wet market (fen per kilogram). Most goods go on the pan in a
container (docs/anti_cheat.md, "Physics and units"): film bags of 2–8 g, trays and baskets of 60–400 g. A container
is either tared on the pan (weighed tare, T) or covered by a tare value the vendor keys or recalls with the
PLU (preset tare, PT): the bag's usual 5 g, a tray type's nominal mass, which the real container misses by
a few grams. Some sales are small (a handful of chillies or herbs, 20–100 e). Deterministic for an rng.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from .scale import ScaleFirmware, TareKind

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
#: Goods bought by the handful: 100–500 g, 20–100 e on a 5 g scale.
SMALL_COMMODITIES: tuple[tuple[str, str, int, int, int, int], ...] = (
    ("3101", "chilli 小米椒", 1_200, 3_000, 100, 400),
    ("3102", "coriander 香菜", 1_000, 2_400, 100, 250),
    ("3103", "ginger 生姜", 1_000, 1_600, 100, 500),
)
SMALL_SHARE = 0.2  # share of purchases that are small
IN_CONTAINER = 0.7  # share of purchases in a bag, tray or basket
PRESET_SHARE = 0.5  # share of containers covered by a preset tare (the rest are tared on the pan)

# (container, lightest and heaviest real mass in g, the preset tare keyed or recalled for it in g, weight):
# bags vary most; a stall's trays of one type stay within a few per cent of their nominal mass.
CONTAINERS: tuple[tuple[str, int, int, int, int], ...] = (
    ("film bag 塑料袋", 2, 8, 5, 14),
    ("foam tray 泡沫托盘", 60, 70, 65, 2),
    ("plastic tray 塑料托盘", 115, 125, 120, 2),
    ("plastic basket 塑料筐", 190, 210, 200, 1),
    ("steel tray 不锈钢盘", 385, 400, 390, 1),
)


@dataclass(frozen=True, slots=True)
class Purchase:
    """One customer's purchase: goods of ``true_net_mg`` in ``container`` (``container_mg``, or none), and
    how the vendor tares it (``tare_kind``; a preset tare is ``preset_tare_mg``)."""

    plu: str
    name: str
    unit_price_fen_per_kg: int
    true_net_mg: int
    container: str = ""
    container_mg: int = 0
    tare_kind: TareKind | None = None
    preset_tare_mg: int = 0

    def sell_on(self, firmware: ScaleFirmware, *, ts_ms: int) -> dict[str, Any]:
        """The vendor sells it on ``firmware``: the transaction the scale registers."""
        return firmware.sell(
            ts_ms=ts_ms,
            plu=self.plu,
            true_net_mg=self.true_net_mg,
            unit_price_fen_per_kg=self.unit_price_fen_per_kg,
            container_mg=self.container_mg,
            tare_kind=self.tare_kind,
            preset_tare_mg=self.preset_tare_mg,
        )


def commodity_medians() -> dict[str, int]:
    """The market's published middle price per commodity (fen/kg)."""
    return {plu: (lo + hi) // 2 for plu, _name, lo, hi, _g_lo, _g_hi in (*COMMODITIES, *SMALL_COMMODITIES)}


def draw_purchase(rng: random.Random) -> Purchase:
    """A customer's purchase at the market's usual rates."""
    table = SMALL_COMMODITIES if rng.random() < SMALL_SHARE else COMMODITIES
    plu, name, lo, hi, g_lo, g_hi = rng.choice(table)
    price = rng.randint(lo // 10, hi // 10) * 10
    mass_mg = rng.randint(g_lo, g_hi) * 1000
    if rng.random() >= IN_CONTAINER:
        return Purchase(plu, name, price, mass_mg)
    container, c_lo, c_hi, preset_g, _weight = rng.choices(CONTAINERS, weights=[c[4] for c in CONTAINERS])[0]
    container_mg = rng.randint(c_lo * 1000, c_hi * 1000)
    if rng.random() < PRESET_SHARE:
        return Purchase(plu, name, price, mass_mg, container, container_mg, "preset", preset_g * 1000)
    return Purchase(plu, name, price, mass_mg, container, container_mg, "weighed")
