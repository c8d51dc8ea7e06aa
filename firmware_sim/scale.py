"""Firmware of a smart price-computing scale speaking MT-SICS plus its profile's extension commands.

The model is pure (no I/O): :meth:`ScaleFirmware.sell` makes a transaction as the scale would, and
:meth:`ScaleFirmware.respond` answers one command line; :mod:`firmware_sim.pty_link` and
:mod:`firmware_sim.tcp_link` put it on a serial line or a TCP port.

Physics (docs/anti_cheat.md, OIML R76): the load cell measures the **gross** load on the pan,
goods and their bag or tray together. Counts = counts of the empty pan + sensitivity × gross load; the scale
indicates gross G = (counts − zero counts) / coefficient, quantised to d, and registers net = G − tare. A
weighed tare (T) is the indication of the empty container on the pan; a preset tare (PT) is keyed (or
recalled from a PLU) with the pan empty, and the container then goes on with the goods. Honest scales read
within the MPE of their class (σ = e/6 on the load). An honest drift (``span_error``) is a change of the
load cell's sensitivity: counts and indication move together, so it shows only against the true mass. The
empty pan creeps a little between sales and zero tracking follows it (within ±0.5 e); every zero-setting
(ZERO key, the host's ``Z``, power-on zero) steps ``zero_set_events``.

A :class:`Cheat` makes the scale cheat in one of the ways of docs/anti_cheat.md, at the magnitudes reported there,
always on the gross indication:

- ``cheat_chip``: the indication is multiplied by ``ratio`` (1.1–1.3), the load-cell counts are not.
  With ``keyed=True`` it is off until the vendor types the key sequence (:data:`CHEAT_KEYS`), and a
  reboot (``@``) turns it off again, so it passes a check weighing done right after power-on;
- ``remote_control``: a receiver inflates the load-cell signal itself (2 kg reads 2.2–2.4 kg), so counts
  and indication agree;
- ``recalibration``: re-calibrated with a wrong factor (kg→jin 2.1–2.2 instead of 2.0): coefficient and
  indication change together and the calibration event counter stepped;
- ``price_math``: the amount charged is ``extra_fen`` more than weight × unit price;
- ``throw``: weights are committed without waiting for stability (no stable flag, or under 0.4 s);
- ``zero_trick``: the scale was zeroed without its tray (连盘), so ``zero_offset_mg`` (1.3–2 kg) of tray
  counts as goods; counts and indication agree, but the zero lies far below the verified one and the empty
  pan reads the tray. The vendor redoes it after a power-on zero;
- ``price_scaling``: unit price keyed at 1/``price_factor`` (10 or 100) and the weight shown ×factor, so
  the receipt looks cheap and the rounding of the price works for the vendor;
- ``preset_base`` (预留底数): for a share ``base_share`` of customers the vendor zeroes the scale with
  ``base_mg`` (50–150 g) held off the pan, and zeroes it again honestly for the others: the zero jumps by
  that mass between sales (each time a zero-setting event) and the empty pan reads it.

A weighed tare cancels a zero offset (the tare is weighed with it), so ``zero_trick`` and ``preset_base``
cost a customer only on sales without one; :attr:`ScaleFirmware.last_cheated` says whether the last sale
was cheated. Faults: ``clock_skew_ms`` shifts the scale's clock; the links' ``reply_delay_s`` makes the line slow.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from device_profiles import Profile, amount_fen
from device_profiles.codecs import mtsics
from device_profiles.records import RECORD_TYPES, TARE_KINDS

CheatKind = Literal[
    "cheat_chip",
    "remote_control",
    "recalibration",
    "price_math",
    "throw",
    "zero_trick",
    "price_scaling",
    "preset_base",
]
CHEAT_KINDS: tuple[CheatKind, ...] = get_args(CheatKind)
TareKind = Literal["weighed", "preset"]
CHEAT_KEYS = "*#7#3"  # the hidden key sequence of our simulated cheat chip
TRANSACTION_MEMORY = 10_000
COUNT_NOISE = 2.0  # σ of the ADC, in counts
_KINDS = {n: s.kind for t in ("scale_state", "sale", "reweigh") for n, s in RECORD_TYPES[t].fields.items()} | {
    "ts": "int"
}
_OPTIONAL = {t: frozenset(n for n, s in RECORD_TYPES[t].fields.items() if not s.required) for t in ("sale", "reweigh")}


@dataclass(frozen=True, slots=True)
class Cheat:
    """How a scale cheats. ``ratio``: weight factor (1.1 = +10 %); ``extra_fen``: price mark-up;
    ``keyed``: a cheat chip waits for its key sequence; ``zero_offset_mg``: the tray left out of the zero;
    ``base_mg``, ``base_share``: the preset base left out of the zero, for that share of customers."""

    kind: CheatKind
    ratio: float = 1.10
    extra_fen: int = 50
    keyed: bool = False
    zero_offset_mg: int = 1_500_000
    price_factor: int = 100
    base_mg: int = 100_000
    base_share: float = 0.5


@dataclass
class ScaleFirmware:
    """State of one simulated scale."""

    profile: Profile
    seed: int = 0
    coefficient: float = 20_000.0  # ADC counts per kg at calibration
    zero_counts: int = 120_000  # the zero reference; at start the verified one, the empty pan's counts
    calibration_events: int = 3
    configuration_events: int = 7
    zero_set_events: int = 0  # zero-settings so far (not sealed)
    software_id: str = "ZJ-PCS-FW 2.1.0 crc=5A3C"
    cheat: Cheat | None = None
    noise_sigma_e: float = 1 / 6  # honest reading error on a load, in e (0: exact readings, for tests)
    span_error: float = 0.0  # honest drift of the load cell's sensitivity since calibration, relative
    zero_creep_e: float = 0.02  # σ of the empty pan's creep per sale, in e (temperature); 0 for tests
    clock_skew_ms: int = 0
    pending: deque[dict[str, Any]] = field(default_factory=deque)
    next_txn: int = 1
    load_mg: int = 0  # what ``S`` reports: the last registered weight
    boots: int = 1
    rng: random.Random = field(init=False)
    true_coefficient: float = field(init=False)
    verified_zero_counts: int = field(init=False)
    unloaded_counts: float = field(init=False)  # what the load cell reads with the pan empty (physics)
    chip_active: bool = field(init=False)
    base_on: bool = field(init=False, default=False)
    last_cheated: bool = field(init=False, default=False)
    _keys: str = field(init=False, default="")

    def __post_init__(self) -> None:
        if self.profile.mtsics is None or self.profile.metrology is None:
            raise ValueError(f"profile {self.profile.id} is not an MT-SICS scale")
        self.rng = random.Random(self.seed)
        self.true_coefficient = self.coefficient
        self.verified_zero_counts = self.zero_counts
        self.unloaded_counts = float(self.zero_counts)
        kind = self.cheat.kind if self.cheat else None
        self.chip_active = kind == "cheat_chip" and not (self.cheat and self.cheat.keyed)
        if self.cheat is not None and kind == "recalibration":
            self.coefficient /= self.cheat.ratio
            self.calibration_events += 1
        if self.cheat is not None and kind == "zero_trick":
            self.zero_counts -= round(self._mass_counts(self.cheat.zero_offset_mg))

    # -- keypad and power ---------------------------------------------------------------------------
    def press(self, keys: str) -> None:
        """Keys typed on the scale's keypad; the cheat chip listens for :data:`CHEAT_KEYS`."""
        self._keys = (self._keys + keys)[-len(CHEAT_KEYS) :]
        if self.cheat is not None and self.cheat.kind == "cheat_chip" and self._keys == CHEAT_KEYS:
            self.chip_active = not self.chip_active
            self._keys = ""

    def reboot(self) -> None:
        """Power cycle: power-on zero on the pan as it is; a keyed cheat chip is off again; transaction memory
        survives (it is flash)."""
        self.boots += 1
        if self.cheat is not None and self.cheat.keyed:
            self.chip_active = False
        self.zero()

    def zero(self, *, lifted_mg: int = 0) -> None:
        """Zero-setting (ZERO key, the host's ``Z``, power-on zero) with the pan empty: the zero becomes the
        counts of the pan as it is, less ``lifted_mg`` that the vendor holds off it meanwhile."""
        self.zero_counts = round(self.unloaded_counts - self._mass_counts(lifted_mg) + self._noise())
        self.zero_set_events += 1
        self.base_on = lifted_mg > 0 and self.cheat is not None and self.cheat.kind == "preset_base"
        self.load_mg = 0

    # -- weighing ---------------------------------------------------------------------------------
    @property
    def d_mg(self) -> int:
        assert self.profile.metrology is not None
        return self.profile.metrology.d_mg

    @property
    def e_mg(self) -> int:
        assert self.profile.metrology is not None
        return self.profile.metrology.e_mg

    def _quantise(self, mg: float) -> int:
        return round(mg / self.d_mg) * self.d_mg

    def _noise(self) -> float:
        return self.rng.gauss(0.0, COUNT_NOISE)

    def _mass_counts(self, mg: float) -> float:
        """Counts a mass adds on the load cell, with its sensitivity as it is now (drift included)."""
        return self.true_coefficient * (1 + self.span_error) * mg / 1_000_000

    def _counts(self, load_mg: int) -> int:
        """Load-cell counts with ``load_mg`` on the empty pan: goods and container, the gross load."""
        signal = 0.0
        if load_mg:
            # an honest scale reads within the initial-verification MPE at low loads: σ = e/6, clipped at ±e/2
            half_e = self.e_mg / 2
            signal = load_mg + max(-half_e, min(half_e, self.rng.gauss(0.0, self.e_mg * self.noise_sigma_e)))
            if self.cheat is not None and self.cheat.kind == "remote_control":
                signal *= self.cheat.ratio  # the receiver inflates the load-cell signal itself
        return round(self.unloaded_counts + self._mass_counts(signal) + self._noise())

    def _indicate(self, counts: int) -> int:
        """The gross indication the scale computes from ``counts``, in mg, quantised to d."""
        mg = (counts - self.zero_counts) / self.coefficient * 1_000_000
        if self.cheat is not None and self.cheat.kind == "cheat_chip" and self.chip_active:
            mg *= self.cheat.ratio
        return self._quantise(mg)

    def reading(self, load_mg: int) -> tuple[int, int]:
        """(gross indication in mg, raw counts) with a load of ``load_mg`` on the empty pan."""
        counts = self._counts(load_mg)
        return self._indicate(counts), counts

    def _between_sales(self) -> None:
        """The empty pan creeps a little; zero tracking follows it while the empty pan reads near zero."""
        step = self.rng.gauss(0.0, self.zero_creep_e * self._mass_counts(self.e_mg)) if self.zero_creep_e else 0.0
        self.unloaded_counts += step + 0.05 * (self.verified_zero_counts - self.unloaded_counts)
        band = 0.5 * self.e_mg * self.coefficient / 1_000_000  # tracking acts within ±0.5 e of zero
        if abs(self.unloaded_counts - self.zero_counts) <= band:
            self.zero_counts = round(self.unloaded_counts)
        kind = self.cheat.kind if self.cheat else None
        if self.cheat is not None and kind == "zero_trick":  # the vendor keeps the tray out of the zero
            off = self.unloaded_counts - self._mass_counts(self.cheat.zero_offset_mg) - self.zero_counts
            if abs(off) > band:
                self.zero(lifted_mg=self.cheat.zero_offset_mg)
        elif self.cheat is not None and kind == "preset_base":  # toggled per customer
            on = self.rng.random() < self.cheat.base_share
            if on != self.base_on:
                self.zero(lifted_mg=self.cheat.base_mg if on else 0)

    def sell(
        self,
        *,
        ts_ms: int,
        plu: str,
        true_net_mg: int,
        unit_price_fen_per_kg: int,
        container_mg: int = 0,
        tare_kind: TareKind | None = None,
        preset_tare_mg: int = 0,
    ) -> dict[str, Any]:
        """Register one sale and keep it in transaction memory: goods of true mass ``true_net_mg`` in a
        container (bag, tray) of true mass ``container_mg`` on the pan. ``tare_kind``: None, no tare (a
        container is weighed as goods); ``weighed``, the empty container is tared on the pan (T);
        ``preset``, a tare of ``preset_tare_mg`` is keyed or recalled with the pan empty (PT). After the
        sale the pan is empty again."""
        if len(self.pending) >= TRANSACTION_MEMORY:
            raise OverflowError("transaction memory full")  # a real scale refuses to register the sale
        if tare_kind is not None and tare_kind not in TARE_KINDS:
            raise ValueError(f"tare_kind must be one of {TARE_KINDS}, not {tare_kind!r}")
        kind = self.cheat.kind if self.cheat else None
        self._between_sales()
        empty = self._counts(0)  # the pan before anything goes on
        tare, tare_gross = 0, 0
        if tare_kind == "weighed":
            tare_gross = self._indicate(self._counts(container_mg))
            tare = max(0, tare_gross)  # a tare is subtractive: a container reading 0 leaves no tare
        elif tare_kind == "preset":
            tare, tare_gross = max(0, self._quantise(preset_tare_mg)), self._indicate(empty)
        raw = self._counts(true_net_mg + container_mg)
        net_mg = self._indicate(raw) - tare
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
        self.last_cheated = (
            kind is not None
            and (kind != "cheat_chip" or self.chip_active)
            and (kind != "preset_base" or self.base_on)
            and not (kind in ("zero_trick", "preset_base") and tare_kind == "weighed")
        )
        txn: dict[str, Any] = {
            "txn": self.next_txn,
            "ts": ts_ms + self.clock_skew_ms,
            "plu": plu,
            "net_mg": net_mg,
            "tare_mg": tare,
            "unit_price_fen_per_kg": price,
            "amount_fen": amount,
            "stable": stable,
            "stable_ms": stable_ms,
            "raw_counts": raw,
            "zero_counts": self.zero_counts,
            "calibration_events": self.calibration_events,
            "configuration_events": self.configuration_events,
        }
        if tare_kind is not None:
            txn |= {"tare_gross_mg": tare_gross, "tare_kind": tare_kind}
        txn |= {"empty_counts": empty, "zero_set_events": self.zero_set_events}
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
            self.zero()
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
        optional = _OPTIONAL[spec.transaction_record]
        if role == "transaction":
            if not self.pending:
                return mtsics.encode(cmd, extension.empty_status or "I")
            return self._reply(cmd, extension.reply, self.pending[0], optional)
        if role == "transaction_ack":
            if not self.pending or str(self.pending[0]["txn"]) != line.args[0]:
                return mtsics.encode(cmd, "L")
            return self._reply(cmd, extension.reply, self.pending.popleft(), optional)
        m = self.profile.metrology
        state: dict[str, Any] = {
            "accuracy_class": m.accuracy_class,
            "max_g": m.max_g,
            "min_g": m.min_g,
            "e_mg": m.e_mg,
            "d_mg": m.d_mg,
            "raw_counts": self._counts(0),
            "zero_counts": self.zero_counts,
            "coefficient": round(self.coefficient, 3),
            "calibration_events": self.calibration_events,
            "configuration_events": self.configuration_events,
            "software_id": self.software_id,
        }
        return self._reply(cmd, extension.reply, state)

    @staticmethod
    def _reply(cmd: str, names: list[str], values: dict[str, Any], optional: Collection[str] = ()) -> bytes:
        """``<cmd> A <values…>``; an optional field the values lack is sent as ``""`` (not reported)."""
        tokens: list[str | mtsics.Quoted] = []
        for n in names:
            if n not in values and n in optional:
                tokens.append(mtsics.Quoted(""))
            else:
                tokens.append(mtsics.render(values[n], _KINDS[n]))
        return mtsics.encode(cmd, "A", *tokens)
