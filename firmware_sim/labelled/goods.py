"""What a wet market sells, in what, and at what price through the day.

Commodities with a city-wide middle price (fen/kg, the registry's cold-start prior) and a typical sale mass;
stall types with the commodities, scale capacities and trays they use; the price schedule of a vendor's day
(morning full price, an afternoon discount of 10–30 %, closing clearance at 0.1–0.3 × the morning price for
perishables). Local time is China Standard Time (UTC+8); rows carry UTC milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
#: 2026-03-02 00:00 China Standard Time, in UTC ms: the first day of every labelled market
PERIOD_START_MS = 1_772_380_800_000


@dataclass(frozen=True, slots=True)
class Commodity:
    plu: str
    name: str
    price_fen_per_kg: int  # city-wide middle price
    mass_g: float  # median sale mass
    spread: float  # σ of log(mass)
    perishable: bool  # cleared at closing
    small: bool  # sold by the handful (herbs, chillies): the 2–20 e sales


COMMODITIES: tuple[Commodity, ...] = (
    Commodity("1001", "pork belly 五花肉", 3_200, 700, 0.5, False, False),
    Commodity("1002", "beef 牛肉", 8_000, 600, 0.5, False, False),
    Commodity("1003", "pork ribs 排骨", 4_000, 800, 0.5, False, False),
    Commodity("1004", "chicken 鸡", 2_400, 1_500, 0.4, False, False),
    Commodity("2001", "grass carp 草鱼", 2_000, 1_500, 0.4, True, False),
    Commodity("2002", "shrimp 基围虾", 9_000, 500, 0.5, True, False),
    Commodity("2003", "crucian carp 鲫鱼", 2_400, 700, 0.4, True, False),
    Commodity("3001", "tomato 番茄", 800, 600, 0.5, True, False),
    Commodity("3002", "cabbage 白菜", 300, 1_500, 0.5, True, False),
    Commodity("3003", "garlic 大蒜", 1_400, 250, 0.6, False, False),
    Commodity("3004", "coriander 香菜", 1_600, 60, 0.6, True, True),
    Commodity("3005", "scallion 小葱", 800, 100, 0.6, True, True),
    Commodity("3006", "chilli 小米辣", 1_200, 120, 0.6, True, True),
    Commodity("3007", "ginger 生姜", 1_600, 200, 0.6, False, True),
    Commodity("3008", "potato 土豆", 400, 1_200, 0.5, False, False),
    Commodity("3009", "cucumber 黄瓜", 600, 600, 0.5, True, False),
    Commodity("3010", "bok choy 青菜", 600, 500, 0.5, True, False),
    Commodity("4001", "apple 苹果", 1_200, 1_500, 0.5, False, False),
    Commodity("4002", "banana 香蕉", 800, 1_200, 0.5, True, False),
    Commodity("4003", "grapes 葡萄", 1_600, 800, 0.5, True, False),
    Commodity("4004", "strawberry 草莓", 3_000, 500, 0.4, True, False),
    Commodity("5001", "tofu 豆腐", 600, 500, 0.4, True, False),
    Commodity("5002", "bean sprouts 豆芽", 400, 400, 0.5, True, False),
    Commodity("6001", "peanuts 花生", 2_000, 500, 0.6, False, False),
    Commodity("6002", "Sichuan pepper 花椒", 12_000, 50, 0.6, False, True),
)
PLU_INDEX = {c.plu: i for i, c in enumerate(COMMODITIES)}


@dataclass(frozen=True, slots=True)
class StallType:
    name: str
    share: float  # of a market's stalls
    plus: tuple[str, ...]
    capacities: tuple[float, float, float]  # probability of a 6, 15 and 30 kg scale
    trays_g: tuple[int, int]  # nominal tray and basket masses this stall uses
    small_factor: float  # how much more often than the condition's rate it sells by the handful


STALL_TYPES: tuple[StallType, ...] = (
    StallType(
        "vegetables",
        0.35,
        ("3001", "3002", "3003", "3004", "3005", "3006", "3007", "3008", "3009", "3010"),
        (0.4, 0.6, 0),
        (60, 200),
        2.0,
    ),
    StallType("meat", 0.2, ("1001", "1002", "1003", "1004"), (0, 0.5, 0.5), (100, 300), 0.2),
    StallType("fish", 0.12, ("2001", "2002", "2003"), (0, 0.3, 0.7), (200, 400), 0.2),
    StallType("fruit", 0.15, ("4001", "4002", "4003", "4004"), (0, 0.6, 0.4), (150, 400), 0.3),
    StallType("tofu", 0.08, ("5001", "5002", "3005"), (0.5, 0.5, 0), (60, 100), 0.5),
    StallType("dry goods", 0.1, ("6001", "6002", "3003", "3007"), (1.0, 0, 0), (60, 100), 3.0),
)

BAG_G = (2.0, 8.0)  # film bags really weigh 2–8 g …
BAG_PRESET_G = 5  # … and are keyed in as 5 g
TRAY_SPREAD = 0.03  # a tray's real mass within ±3 % of the nominal it is keyed in at [assumed]


@dataclass(frozen=True, slots=True)
class PriceDay:
    """One vendor's prices on one day: morning price per commodity and when the discounts start."""

    morning: I64  # fen/kg, by commodity index
    afternoon_from_ms: int  # local ms since midnight; past the end of the day when no discount
    afternoon_factor: float
    clearance_from_ms: int
    clearance_factor: float


PHASES = ("morning", "afternoon", "clearance")


def vendor_base_prices(rng: np.random.Generator, market_level: float) -> F64:
    """A vendor's own prices: the city's middle price × the market's level × the vendor's ±10 %."""
    base = np.array([c.price_fen_per_kg for c in COMMODITIES], dtype=np.float64)
    result: F64 = base * market_level * rng.uniform(0.9, 1.1, len(base))
    return result


def price_day(
    rng: np.random.Generator,
    base: F64,
    *,
    p_afternoon: float,
    discount: tuple[float, float],
    p_clearance: float,
    clearance: tuple[float, float],
) -> PriceDay:
    morning = np.maximum(10, np.rint(base * rng.uniform(0.97, 1.03, len(base)) / 10) * 10).astype(np.int64)
    never = 2 * DAY_MS
    afternoon = int(rng.uniform(12, 14) * HOUR_MS) if rng.random() < p_afternoon else never
    clear = int(rng.uniform(17, 18.5) * HOUR_MS) if rng.random() < p_clearance else never
    return PriceDay(morning, afternoon, 1 - rng.uniform(*discount), clear, rng.uniform(*clearance))


def prices(day: PriceDay, commodity: I64, local_ms: I64) -> tuple[I64, I64]:
    """(unit price fen/kg, phase index into PHASES) of each sale of the day."""
    perishable = np.array([c.perishable for c in COMMODITIES])[commodity]
    clearing = perishable & (local_ms >= day.clearance_from_ms)
    afternoon = ~clearing & (local_ms >= day.afternoon_from_ms)
    factor = np.where(clearing, day.clearance_factor, np.where(afternoon, day.afternoon_factor, 1.0))
    price = np.maximum(10, np.rint(day.morning[commodity] * factor / 10) * 10).astype(np.int64)
    phase: I64 = np.where(clearing, 2, np.where(afternoon, 1, 0)).astype(np.int64)
    return price, phase


def commodity_medians() -> dict[str, int]:
    """The city's middle price per PLU (fen/kg): the registry's cold-start prior, not any market's price."""
    return {c.plu: c.price_fen_per_kg for c in COMMODITIES}
