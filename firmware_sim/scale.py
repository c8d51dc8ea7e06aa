"""Firmware of a smart price-computing scale speaking MT-SICS plus its profile's extension commands.

The model is pure (no I/O): :meth:`ScaleFirmware.sell` makes a transaction as the scale would, and
:meth:`ScaleFirmware.respond` answers one command line. :mod:`firmware_sim.pty_link` puts it on a
pseudo-terminal. Honest scales read within the in-service MPE of their class; a :class:`Cheat` makes the
scale cheat in one of the ways of ``shared/domain/METROLOGY.md``:

- ``cheat_chip``: the displayed weight is multiplied by ``ratio``, the load-cell counts are not;
- ``remote_control``: the load-cell signal itself is inflated, so counts and display agree;
- ``recalibration``: the scale was re-calibrated with a wrong factor: coefficient and display change
  together and the calibration event counter stepped;
- ``price_math``: the amount charged is more than weight × unit price;
- ``throw``: weights are committed without waiting for stability.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Literal

from device_profiles import Profile, amount_fen
from device_profiles.codecs import mtsics
from device_profiles.records import RECORD_TYPES

CheatKind = Literal["cheat_chip", "remote_control", "recalibration", "price_math", "throw"]
CHEAT_KINDS: tuple[CheatKind, ...] = ("cheat_chip", "remote_control", "recalibration", "price_math", "throw")
TRANSACTION_MEMORY = 10_000


@dataclass(frozen=True, slots=True)
class Cheat:
    """How a scale cheats; ``ratio`` is the weight factor (1.1 = +10 %), ``extra_fen`` the price mark-up."""

    kind: CheatKind
    ratio: float = 1.10
    extra_fen: int = 50


@dataclass
class ScaleFirmware:
    """State of one simulated scale."""

    profile: Profile
    seed: int = 0
    coefficient: float = 20_000.0  # ADC counts per kg at calibration
    zero_counts: int = 120_000
    calibration_events: int = 3
    configuration_events: int = 7
    software_id: str = "ZJ-PCS-FW 2.1.0 crc=5A3C"
    cheat: Cheat | None = None
    noise_sigma_e: float = 1 / 6  # honest reading error, in e (0: exact readings, for tests)
    pending: deque[dict[str, Any]] = field(default_factory=deque)
    next_txn: int = 1
    load_mg: int = 0
    rng: random.Random = field(init=False)
    true_coefficient: float = field(init=False)

    def __post_init__(self) -> None:
        if self.profile.mtsics is None or self.profile.metrology is None:
            raise ValueError(f"profile {self.profile.id} is not an MT-SICS scale")
        self.rng = random.Random(self.seed)
        self.true_coefficient = self.coefficient
        if self.cheat is not None and self.cheat.kind == "recalibration":
            self.coefficient /= self.cheat.ratio
            self.calibration_events += 1

    # -- weighing ---------------------------------------------------------------------------------
    @property
    def d_mg(self) -> int:
        assert self.profile.metrology is not None
        return self.profile.metrology.d_mg

    def _quantise(self, mg: float) -> int:
        return round(mg / self.d_mg) * self.d_mg

    def _honest_reading(self, true_mg: int) -> float:
        # An honest scale reads within the initial-verification MPE at low loads: σ = e/6, clipped at ±e/2.
        half_e = self.d_mg / 2
        return true_mg + max(-half_e, min(half_e, self.rng.gauss(0.0, self.d_mg * self.noise_sigma_e)))

    def _raw_counts(self, signal_mg: float) -> int:
        noise = self.rng.gauss(0.0, 2.0)
        return round(self.zero_counts + self.true_coefficient * signal_mg / 1_000_000 + noise)

    def sell(
        self, *, ts_ms: int, plu: str, true_net_mg: int, unit_price_fen_per_kg: int, tare_mg: int = 0
    ) -> dict[str, Any]:
        """Register one sale of goods of true net mass ``true_net_mg`` and keep it in transaction memory."""
        cheat = self.cheat.kind if self.cheat else None
        ratio = self.cheat.ratio if self.cheat else 1.0
        reading = self._honest_reading(true_net_mg)
        signal = reading  # what the load cell sees, in mg
        if cheat in ("cheat_chip", "remote_control", "recalibration"):
            reading *= ratio
        if cheat == "remote_control":
            signal = reading  # the receiver inflates the load-cell signal itself
        net_mg = self._quantise(reading)
        raw = self._raw_counts(signal)
        amount = amount_fen(net_mg, unit_price_fen_per_kg)
        if cheat == "price_math":
            amount += self.cheat.extra_fen if self.cheat else 0
        stable, stable_ms = True, self.rng.randint(450, 1500)
        if cheat == "throw":
            stable, stable_ms = self.rng.random() < 0.3, self.rng.randint(0, 250)
        txn = {
            "txn": self.next_txn,
            "ts": ts_ms,
            "plu": plu,
            "net_mg": net_mg,
            "tare_mg": tare_mg,
            "unit_price_fen_per_kg": unit_price_fen_per_kg,
            "amount_fen": amount,
            "stable": stable,
            "stable_ms": stable_ms,
            "raw_counts": raw,
            "zero_counts": self.zero_counts,
            "calibration_events": self.calibration_events,
            "configuration_events": self.configuration_events,
        }
        self.next_txn += 1
        if len(self.pending) >= TRANSACTION_MEMORY:
            raise OverflowError("transaction memory full")  # a real scale refuses to register the sale
        self.pending.append(txn)
        self.load_mg = net_mg
        return txn

    # -- MT-SICS ----------------------------------------------------------------------------------
    def respond(self, line: mtsics.Line) -> bytes:
        """The reply to one command line."""
        spec = self.profile.mtsics
        assert spec is not None and self.profile.metrology is not None
        cmd = line.command
        if cmd in ("S", "SI"):
            return mtsics.encode_weight("S", "S", self.load_mg, unit=spec.weight_unit, decimals=spec.weight_decimals)
        if cmd in ("Z", "ZI"):
            self.load_mg = 0
            return mtsics.encode(*spec.zero_reply.split())
        if cmd == "@":
            return mtsics.encode("I4", "A", mtsics.Quoted(self.software_id))
        ext = {e.command: (role, e) for role, e in spec.extensions.items()}
        if cmd not in ext:
            return mtsics.encode("ES")
        role, extension = ext[cmd]
        if len(line.args) != len(extension.args):
            return mtsics.encode("ES")
        if role == "transaction":
            if not self.pending:
                return mtsics.encode(cmd, extension.empty_status or "I")
            return self._reply(cmd, extension.reply, self.pending[0])
        if role == "transaction_ack":
            if not self.pending or str(self.pending[0]["txn"]) != line.args[0]:
                return mtsics.encode(cmd, "L")
            done = self.pending.popleft()
            return self._reply(cmd, extension.reply, done)
        m = self.profile.metrology
        state: dict[str, Any] = {
            "accuracy_class": m.accuracy_class,
            "max_g": m.max_g,
            "min_g": m.min_g,
            "e_mg": m.e_mg,
            "d_mg": m.d_mg,
            "raw_counts": self._raw_counts(self.load_mg),
            "zero_counts": self.zero_counts,
            "coefficient": round(self.coefficient, 3),
            "calibration_events": self.calibration_events,
            "configuration_events": self.configuration_events,
            "software_id": self.software_id,
        }
        return self._reply(cmd, extension.reply, state)

    @staticmethod
    def _reply(cmd: str, names: list[str], values: dict[str, Any]) -> bytes:
        kinds = {
            **{n: s.kind for n, s in RECORD_TYPES["sale"].fields.items()},
            **{n: s.kind for n, s in RECORD_TYPES["scale_state"].fields.items()},
            "ts": "int",
        }
        return mtsics.encode(cmd, "A", *(mtsics.render(values[n], kinds[n]) for n in names))
