"""Firmware of a smart price-computing scale speaking MT-SICS plus its profile's extension commands.

The model is pure (no I/O): :meth:`ScaleFirmware.sell` makes a transaction as the scale would, and
:meth:`ScaleFirmware.respond` answers one command line; :mod:`firmware_sim.pty_link` and
:mod:`firmware_sim.tcp_link` put it on a serial line or a TCP port. Honest scales read within the MPE of
their class (σ = e/6). A :class:`Cheat` makes the scale cheat in one of the ways of
``shared/domain/METROLOGY.md``, at the magnitudes reported there:

- ``cheat_chip``: the displayed weight is multiplied by ``ratio`` (1.1–1.3), the load-cell counts are not.
  With ``keyed=True`` it is off until the vendor types the key sequence (:data:`CHEAT_KEYS`), and a
  reboot (``@``) turns it off again, so it passes a check weighing done right after power-on;
- ``remote_control``: a receiver inflates the load-cell signal itself (2 kg reads 2.2–2.4 kg), so counts
  and display agree;
- ``recalibration``: re-calibrated with a wrong factor (kg→jin 2.1–2.2 instead of 2.0): coefficient and
  display change together and the calibration event counter stepped;
- ``price_math``: the amount charged is ``extra_fen`` more than weight × unit price;
- ``throw``: weights are committed without waiting for stability (no stable flag, or under 0.4 s);
- ``zero_trick``: the scale was zeroed without its tray (预留底数), so ``zero_offset_mg`` of tray counts
  as goods; counts and display agree, but the zero lies far below the verified one;
- ``price_scaling``: unit price keyed at 1/``price_factor`` (10 or 100) and the weight shown ×factor, so
  the receipt looks cheap and the rounding of the price works for the vendor.

Faults: ``clock_skew_ms`` shifts the scale's clock; the links' ``reply_delay_s`` makes the line slow.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Literal

from device_profiles import Profile, amount_fen
from device_profiles.codecs import mtsics
from device_profiles.records import RECORD_TYPES

CheatKind = Literal[
    "cheat_chip", "remote_control", "recalibration", "price_math", "throw", "zero_trick", "price_scaling"
]
CHEAT_KINDS: tuple[CheatKind, ...] = (
    "cheat_chip",
    "remote_control",
    "recalibration",
    "price_math",
    "throw",
    "zero_trick",
    "price_scaling",
)
CHEAT_KEYS = "*#7#3"  # the hidden key sequence of our simulated cheat chip
TRANSACTION_MEMORY = 10_000
_KINDS = {n: s.kind for t in ("scale_state", "sale", "reweigh") for n, s in RECORD_TYPES[t].fields.items()} | {
    "ts": "int"
}


@dataclass(frozen=True, slots=True)
class Cheat:
    """How a scale cheats. ``ratio``: weight factor (1.1 = +10 %); ``extra_fen``: price mark-up;
    ``keyed``: a cheat chip waits for its key sequence; ``zero_offset_mg``: the tray left out of the zero."""

    kind: CheatKind
    ratio: float = 1.10
    extra_fen: int = 50
    keyed: bool = False
    zero_offset_mg: int = 1_500_000
    price_factor: int = 100


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
    span_error: float = 0.0  # an honest scale's calibration drift, relative (in-service: within the MPE)
    clock_skew_ms: int = 0
    pending: deque[dict[str, Any]] = field(default_factory=deque)
    next_txn: int = 1
    load_mg: int = 0
    boots: int = 1
    rng: random.Random = field(init=False)
    true_coefficient: float = field(init=False)
    verified_zero_counts: int = field(init=False)
    chip_active: bool = field(init=False)
    _keys: str = field(init=False, default="")

    def __post_init__(self) -> None:
        if self.profile.mtsics is None or self.profile.metrology is None:
            raise ValueError(f"profile {self.profile.id} is not an MT-SICS scale")
        self.rng = random.Random(self.seed)
        self.true_coefficient = self.coefficient
        self.verified_zero_counts = self.zero_counts
        kind = self.cheat.kind if self.cheat else None
        self.chip_active = kind == "cheat_chip" and not (self.cheat and self.cheat.keyed)
        if self.cheat is not None and kind == "recalibration":
            self.coefficient /= self.cheat.ratio
            self.calibration_events += 1
        if self.cheat is not None and kind == "zero_trick":
            self.zero_counts -= round(self.true_coefficient * self.cheat.zero_offset_mg / 1_000_000)

    # -- keypad and power ---------------------------------------------------------------------------
    def press(self, keys: str) -> None:
        """Keys typed on the scale's keypad; the cheat chip listens for :data:`CHEAT_KEYS`."""
        self._keys = (self._keys + keys)[-len(CHEAT_KEYS) :]
        if self.cheat is not None and self.cheat.kind == "cheat_chip" and self._keys == CHEAT_KEYS:
            self.chip_active = not self.chip_active
            self._keys = ""

    def reboot(self) -> None:
        """Power cycle: a keyed cheat chip is off again; transaction memory survives (it is flash)."""
        self.boots += 1
        self.load_mg = 0
        if self.cheat is not None and self.cheat.keyed:
            self.chip_active = False

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
        return round(self.verified_zero_counts + self.true_coefficient * signal_mg / 1_000_000 + noise)

    def reading(self, true_net_mg: int) -> tuple[int, int]:
        """(displayed net in mg, raw counts) for goods of ``true_net_mg`` on the pan."""
        kind = self.cheat.kind if self.cheat else None
        ratio = self.cheat.ratio if self.cheat else 1.0
        signal = self._honest_reading(true_net_mg)  # what the load cell sees, in mg
        shown = signal * (1 + self.span_error)
        if (kind == "cheat_chip" and self.chip_active) or kind == "recalibration":
            shown *= ratio
        elif kind == "remote_control":
            signal *= ratio  # the receiver inflates the load-cell signal itself
            shown = signal * (1 + self.span_error)
        elif kind == "zero_trick" and self.cheat is not None:
            shown += self.cheat.zero_offset_mg  # the tray was not on the pan when zeroed
        return self._quantise(shown), self._raw_counts(signal)

    def sell(
        self, *, ts_ms: int, plu: str, true_net_mg: int, unit_price_fen_per_kg: int, tare_mg: int = 0
    ) -> dict[str, Any]:
        """Register one sale of goods of true net mass ``true_net_mg`` and keep it in transaction memory."""
        if len(self.pending) >= TRANSACTION_MEMORY:
            raise OverflowError("transaction memory full")  # a real scale refuses to register the sale
        kind = self.cheat.kind if self.cheat else None
        net_mg, raw = self.reading(true_net_mg)
        price = unit_price_fen_per_kg
        if kind == "price_scaling":
            factor = self.cheat.price_factor if self.cheat else 100
            price, net_mg = max(1, round(price / factor)), net_mg * factor
        amount = amount_fen(net_mg, price)
        if kind == "price_math" and self.cheat is not None:
            amount += self.cheat.extra_fen
        stable, stable_ms = True, self.rng.randint(450, 1500)
        if kind == "throw":
            stable, stable_ms = self.rng.random() < 0.3, self.rng.randint(0, 250)
        txn = {
            "txn": self.next_txn,
            "ts": ts_ms + self.clock_skew_ms,
            "plu": plu,
            "net_mg": net_mg,
            "tare_mg": tare_mg,
            "unit_price_fen_per_kg": price,
            "amount_fen": amount,
            "stable": stable,
            "stable_ms": stable_ms,
            "raw_counts": raw,
            "zero_counts": self.zero_counts,
            "calibration_events": self.calibration_events,
            "configuration_events": self.configuration_events,
        }
        self.next_txn += 1
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
            self.reboot()
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
            return self._reply(cmd, extension.reply, self.pending.popleft())
        m = self.profile.metrology
        state: dict[str, Any] = {
            "accuracy_class": m.accuracy_class,
            "max_g": m.max_g,
            "min_g": m.min_g,
            "e_mg": m.e_mg,
            "d_mg": m.d_mg,
            "raw_counts": self._raw_counts(0),
            "zero_counts": self.zero_counts,
            "coefficient": round(self.coefficient, 3),
            "calibration_events": self.calibration_events,
            "configuration_events": self.configuration_events,
            "software_id": self.software_id,
        }
        return self._reply(cmd, extension.reply, state)

    @staticmethod
    def _reply(cmd: str, names: list[str], values: dict[str, Any]) -> bytes:
        return mtsics.encode(cmd, "A", *(mtsics.render(values[n], _KINDS[n]) for n in names))
