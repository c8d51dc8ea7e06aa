"""Devices that talk on their own, on pseudo-terminals: a Toledo continuous indicator, a GNSS receiver
driving along a route, and a rapid-test analyzer. Each builds its bytes with the codecs of
:mod:`device_profiles.codecs` from its profile, and can inject faults: ``garbage`` (random bytes between
frames), ``bad_checksum`` (a corrupted checksum), ``silent`` (stops sending).
"""

from __future__ import annotations

import math
import random
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import pairwise
from typing import Any, Self

from device_profiles import Profile
from device_profiles.codecs import nmea, rapid_test, toledo

from .pty_link import PtyPort


@dataclass
class Faults:
    """Fault injection shared by the stream devices; probabilities are per frame."""

    garbage: float = 0.0
    bad_checksum: float = 0.0
    silent: bool = False


class _Emitter(ABC):
    """A thread calling ``self.tick()`` every ``period_s`` and writing what it returns to the pty."""

    period_s: float = 0.1

    def __init__(self, seed: int, faults: Faults | None) -> None:
        self.pty = PtyPort()
        self.port = self.pty.port
        self.rng = random.Random(seed)
        self.faults = faults or Faults()
        self.frames = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=type(self).__name__, daemon=True)

    @abstractmethod
    def tick(self) -> list[bytes]:
        """Frames to send now."""

    def start(self) -> Self:
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.pty.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self) -> None:
        while not self._stop.wait(self.period_s):
            for frame in self.tick():
                self.send(frame)

    def send(self, frame: bytes) -> None:
        if self.faults.silent:
            return
        if self.rng.random() < self.faults.garbage:
            self.pty.write(bytes(self.rng.randrange(256) for _ in range(self.rng.randint(1, 12))))
        if self.rng.random() < self.faults.bad_checksum and len(frame) > 4:
            frame = frame[:-3] + bytes([frame[-3] ^ 0x01]) + frame[-2:]
        self.pty.write(frame)
        self.frames += 1


class ToledoIndicator(_Emitter):
    """A platform scale with continuous output: empty, goods put on (motion), stable, removed."""

    def __init__(self, profile: Profile, *, seed: int = 0, faults: Faults | None = None) -> None:
        assert profile.toledo is not None and profile.metrology is not None
        super().__init__(seed, faults)
        self.profile = profile
        self.period_s = 1.0 / profile.toledo.rate_hz
        d_mg = profile.metrology.d_mg
        self.decimals = next(
            dec for dec in range(6) if d_mg // 10 ** (6 - dec) in (1, 2, 5) and d_mg % 10 ** (6 - dec) == 0
        )
        self.increment = d_mg // 10 ** (6 - self.decimals)
        self.unit_mg = 10 ** (6 - self.decimals)
        self._plan: list[tuple[int, bool]] = []
        self.loads_mg: list[int] = []  # stable loads shown, for tests

    def _cycle(self) -> list[tuple[int, bool]]:
        assert self.profile.metrology is not None
        load = self.rng.randint(1, self.profile.metrology.max_g // 4) * 1000 // self.unit_mg // self.increment
        load_mg = load * self.increment * self.unit_mg
        self.loads_mg.append(load_mg)
        motion = [(int(load_mg * f), True) for f in (0.3, 0.8, 1.05)]
        return [(0, False)] * 3 + motion + [(load_mg, False)] * 8 + [(load_mg // 2, True)]

    def tick(self) -> list[bytes]:
        if not self._plan:
            self._plan = self._cycle()
        weight_mg, motion = self._plan.pop(0)
        digits = weight_mg // self.unit_mg // self.increment * self.increment
        frame = toledo.ToledoFrame(
            weight=digits,
            tare=0,
            decimal_code=self.decimals + 2,
            increment=self.increment,
            net=False,
            negative=False,
            out_of_range=False,
            motion=motion,
            unit="kg",
        )
        return [toledo.encode(frame, with_checksum=self.profile.toledo.checksum if self.profile.toledo else True)]


def _nmea_coord(value: float, *, lat: bool) -> tuple[str, str]:
    hemi = ("N" if value >= 0 else "S") if lat else ("E" if value >= 0 else "W")
    value = abs(value)
    degrees = int(value)
    minutes = (value - degrees) * 60
    return (f"{degrees:02d}{minutes:07.4f}" if lat else f"{degrees:03d}{minutes:07.4f}"), hemi


@dataclass
class Route:
    """Waypoints (lat, lon) driven at ``speed_kmh``, looping."""

    waypoints: Sequence[tuple[float, float]]
    speed_kmh: float = 30.0
    _leg_lengths: list[float] = field(default_factory=list)

    @property
    def _closed(self) -> list[tuple[float, float]]:
        return [*self.waypoints, self.waypoints[0]]

    def __post_init__(self) -> None:
        self._leg_lengths = [_km(a, b) for a, b in pairwise(self._closed)]

    def position(self, seconds: float) -> tuple[float, float, float]:
        """(lat, lon, course) after driving ``seconds``."""
        km = (seconds * self.speed_kmh / 3600) % max(sum(self._leg_lengths), 1e-9)
        for (a, b), leg in zip(pairwise(self._closed), self._leg_lengths, strict=True):
            if km <= leg:
                f = km / leg if leg else 0.0
                course = math.degrees(math.atan2(b[1] - a[1], b[0] - a[0])) % 360
                return a[0] + (b[0] - a[0]) * f, a[1] + (b[1] - a[1]) * f, course
            km -= leg
        return self.waypoints[0][0], self.waypoints[0][1], 0.0


def _km(a: tuple[float, float], b: tuple[float, float]) -> float:
    dlat = math.radians(b[0] - a[0])
    dlon = math.radians(b[1] - a[1]) * math.cos(math.radians((a[0] + b[0]) / 2))
    return 6371.0 * math.hypot(dlat, dlon)


class GnssReceiver(_Emitter):
    """A receiver on a vehicle: GGA then RMC once a second along a route; ``no_fix`` makes fixes invalid."""

    period_s = 1.0

    def __init__(
        self,
        profile: Profile,
        route: Route,
        *,
        seed: int = 0,
        faults: Faults | None = None,
        clock: Callable[[], float] = time.time,
        talker: str = "GN",
    ) -> None:
        super().__init__(seed, faults)
        self.route = route
        self.clock = clock
        self.talker = talker
        self.no_fix = False
        self._t0 = clock()

    def sentences(self, now: float) -> list[bytes]:
        lat, lon, course = self.route.position(now - self._t0)
        stamp = datetime.fromtimestamp(now, UTC)
        hms = stamp.strftime("%H%M%S") + f".{stamp.microsecond // 10_000:02d}"
        la, ns = _nmea_coord(lat, lat=True)
        lo, ew = _nmea_coord(lon, lat=False)
        knots = self.route.speed_kmh / 1.852
        t = self.talker
        if self.no_fix:
            return [
                nmea.encode(f"{t}GGA,{hms},,,,,0,00,99.9,,M,,M,,"),
                nmea.encode(f"{t}RMC,{hms},V,,,,,,,{stamp:%d%m%y},,,N"),
            ]
        return [
            nmea.encode(f"{t}GGA,{hms},{la},{ns},{lo},{ew},1,{self.rng.randint(7, 14):02d},0.9,35.0,M,-5.0,M,,"),
            nmea.encode(f"{t}RMC,{hms},A,{la},{ns},{lo},{ew},{knots:.2f},{course:.2f},{stamp:%d%m%y},,,A"),
        ]

    def tick(self) -> list[bytes]:
        return self.sentences(self.clock())


class RapidTestAnalyzer(_Emitter):
    """A 12-channel analyzer: :meth:`run` tests a batch of samples and sends one line per channel."""

    period_s = 0.05

    def __init__(
        self, profile: Profile, *, seed: int = 0, faults: Faults | None = None, operator: str = "wang"
    ) -> None:
        assert profile.rapid_test is not None
        super().__init__(seed, faults)
        self.spec = profile.rapid_test
        self.operator = operator
        self._queue: list[bytes] = []
        self._lock = threading.Lock()

    def result(self, channel: int, sample: dict[str, Any], *, ts_ms: int) -> dict[str, Any]:
        """One channel's result; ``sample['residue']`` (0..1) sets how much the enzyme is inhibited."""
        a0 = round(self.rng.uniform(0.45, 0.8), 3) if not sample.get("bad_control") else 0.2
        inhibition = min(0.95, max(0.0, sample.get("residue", 0.05) + self.rng.gauss(0, 0.03)))
        at = round(a0 * (1 - inhibition), 3)
        pct, verdict = rapid_test.verdict(a0, at, self.spec)
        return {
            "type": "rapid_test",
            "ts": ts_ms,
            "channel": channel,
            "sample_id": sample["sample_id"],
            "sample_name": sample["name"],
            "sample_category": sample.get("category", "vegetable"),
            "source_id": sample["source_id"],
            "delta_a0": a0,
            "delta_at": at,
            "inhibition_pct": pct,
            "result": verdict,
            "retest": sample.get("retest", 0),
            "reagent_lot": "L2611-03",
            "reagent_expiry": "2027-05-01",
            "temperature_c": 25.0,
            "operator": self.operator,
        }

    def run(self, samples: Sequence[dict[str, Any]], *, ts_ms: int | None = None) -> list[dict[str, Any]]:
        """Test up to 12 samples at once; their lines are sent shortly after. Returns the results."""
        when = ts_ms if ts_ms is not None else int(time.time() * 1000)
        results = [self.result(i + 1, s, ts_ms=when) for i, s in enumerate(samples[: self.spec.channels])]
        with self._lock:
            self._queue += [rapid_test.encode(r, self.spec) for r in results]
        return results

    def tick(self) -> list[bytes]:
        with self._lock:
            out, self._queue = self._queue, []
        return out
