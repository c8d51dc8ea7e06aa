"""What the registry knows about each scale: its verifications (检定), as versions in force over time.

A scale's facts are what was read at a verification: class, Max, e, d, the calibrated coefficient and
zero, the sealed event counters, the approved software id, the date the next verification is due, and
the market it stands in. A scale may be re-verified (or repaired and re-verified) at any time: from that
moment its facts are the new verification's, while its earlier transactions are still judged against
the verification in force when they were made. Each verification is a *version*; :meth:`ScaleFacts.in_force`
finds, for every row of a batch, the version in force at the row's time. Scales the registry does not
know still get an index; their rows get version 0 (no facts), and rules that need facts skip them.

Fair scales (公平秤) and inspectors' check scales are devices with facts of their own: a re-weigh's
tolerance uses the fair scale's class, e and d, not the stall's.

:class:`ScaleFact` (from the contract, :mod:`device_profiles.metrology`) is the one typed document for a
verification's facts: the registry's export, the ingest's devices file and ``zhijian anti-cheat score
--registry`` all read it; :class:`RegistryDocument`
is the whole file (scales, optional verification history, commodity price priors).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Annotated, Any, Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

from device_profiles.metrology import CLASS_CODES, FROM_START, ScaleFact

from .device_index import DeviceIndex

if TYPE_CHECKING:
    from .fact_columns import FactColumns

I64 = npt.NDArray[np.int64]
I32 = npt.NDArray[np.int32]
_NEVER = NEVER = np.iinfo(np.int64).max
_KEY_SHIFT = 42  # composite search key scale << 42 | time; times are below 2**42 ms (year 2109)


class Verification(ScaleFact):
    """An entry of a verification history: whose, from when, and everything read at it. Nothing is taken
    over from an earlier verification, so the sealed counters (the first thing a re-verification changes)
    must be given."""

    device: str = Field(min_length=1)
    verified_ms: int = Field(ge=0, le=2**42)
    calibration_events: int = Field(ge=0, le=2**53)
    configuration_events: int = Field(ge=0, le=2**53)


class RegistryDocument(BaseModel):
    """``zhijian anti-cheat score --registry``: the facts in force per scale, an optional history of
    verifications (each in force from its ``verified_ms`` until the next), and price priors per PLU."""

    model_config = ConfigDict(extra="forbid")

    scales: dict[str, ScaleFact] = Field(default_factory=dict)
    verifications: list[Verification] = Field(default_factory=list)
    commodity_median: dict[str, int] = Field(default_factory=dict, description="fen per kg, a cold-start prior")
    unverified: dict[str, Literal["none"] | Annotated[int, Field(ge=0, le=2**42)]] = Field(
        default_factory=dict,
        description='scales without a valid verification: "none" on record, or when (UTC ms) the latest failed',
    )


class ScaleFacts:
    """Verification versions as growable numpy arrays; rows find theirs with :meth:`in_force`."""

    #: per-version columns (index 0 is "no facts")
    _VERSION_FIELDS = (
        "v_scale",
        "v_from_ms",
        "e_mg",
        "d_mg",
        "max_mg",
        "class_code",
        "zero_counts",
        "calibration_events",
        "configuration_events",
        "verification_due_ms",
        "approved_code",
    )

    def __init__(self) -> None:
        self.index = DeviceIndex()
        self._medians: dict[str, int] = {}
        self.plu_codes: dict[str, int] = {"": 0}
        self.median_by_code: I64 = np.zeros(1, dtype=np.int64)
        self.market_codes: dict[str, int] = {"": 0}
        self.software_codes: dict[str, int] = {"": 0}
        self._n = 0
        cap = 16
        # per scale
        self.latest = np.zeros(cap, dtype=np.intp)  # its newest version (0: none)
        self.n_versions = np.zeros(cap, dtype=np.int64)
        self.market_code: I64 = np.zeros(cap, dtype=np.int64)
        #: from when the scale has no valid verification by the registry's word: FROM_START when none is on
        #: record, the time its latest verification failed, or never (int64 max: none known, or it passed;
        #: a passed one's due date is a fact of its version)
        self.unverified_from_ms: I64 = np.full(cap, _NEVER, dtype=np.int64)
        # scale → [(from_ms, version)]; a scale loaded from columns has none until it is set again
        self._versions: dict[int, list[tuple[int, int]]] = {}
        # per version
        self._nv = 1
        self.known = np.zeros(cap, dtype=np.bool_)
        self.has_zero = np.zeros(cap, dtype=np.bool_)
        self.coefficient = np.ones(cap, dtype=np.float64)
        self.v_scale: I64 = np.zeros(cap, dtype=np.int64)
        self.v_from_ms: I64 = np.zeros(cap, dtype=np.int64)
        # the narrow types hold their bounds (ScaleFact: e, d ≤ 10**7): a million versions cost 19 MB less
        self.e_mg: I32 = np.zeros(cap, dtype=np.int32)
        self.d_mg: I32 = np.zeros(cap, dtype=np.int32)
        self.max_mg: I64 = np.zeros(cap, dtype=np.int64)
        self.class_code: npt.NDArray[np.int8] = np.zeros(cap, dtype=np.int8)
        self.zero_counts: I64 = np.zeros(cap, dtype=np.int64)
        self.calibration_events: I64 = np.zeros(cap, dtype=np.int64)
        self.configuration_events: I64 = np.zeros(cap, dtype=np.int64)
        self.verification_due_ms: I64 = np.zeros(cap, dtype=np.int64)
        self.approved_code: I32 = np.zeros(cap, dtype=np.int32)
        self._set_unknown(0)
        self._search: tuple[I64, npt.NDArray[np.intp]] | None = None
        self._packed: I64 | None = None

    # -- growth ----------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return self._n

    @property
    def devices(self) -> Sequence[str]:
        """The device of each dense index."""
        return self.index.names

    @property
    def versions(self) -> int:
        return self._nv

    def _set_unknown(self, v: int) -> None:
        self.e_mg[v] = self.d_mg[v] = 1
        self.class_code[v] = CLASS_CODES["III"]
        self.verification_due_ms[v] = _NEVER
        self.v_from_ms[v] = FROM_START

    def _grow_scales(self) -> None:
        cap = len(self.latest) * 2
        for name in ("latest", "n_versions", "market_code", "unverified_from_ms"):
            old = getattr(self, name)
            new = np.full(cap, _NEVER if name == "unverified_from_ms" else 0, dtype=old.dtype)
            new[: len(old)] = old
            setattr(self, name, new)

    def _grow_versions(self) -> None:
        cap = len(self.known) * 2
        for name in ("known", "has_zero", "coefficient", *self._VERSION_FIELDS):
            old = getattr(self, name)
            new = np.ones(cap, dtype=old.dtype) if name == "coefficient" else np.zeros(cap, dtype=old.dtype)
            new[: len(old)] = old
            setattr(self, name, new)

    # -- codes -----------------------------------------------------------------------------------------
    @property
    def commodity_median(self) -> dict[str, int]:
        """Prior unit price (fen/kg) per commodity code: the market's published prices; the engine learns
        its own references from the stream and falls back to these only on a cold start."""
        return self._medians

    @commodity_median.setter
    def commodity_median(self, medians: Mapping[str, int]) -> None:
        self._medians = {str(k): int(v) for k, v in medians.items()}
        for plu in self._medians:
            self.plu_code(plu)
        for plu, code in self.plu_codes.items():
            self.median_by_code[code] = self._medians.get(plu, 0)

    def plu_code(self, plu: str) -> int:
        """A dense code for a commodity, so rules look prices up in arrays."""
        code = self.plu_codes.get(plu)
        if code is None:
            code = self.plu_codes[plu] = len(self.plu_codes)
            if code == len(self.median_by_code):
                self.median_by_code = np.r_[self.median_by_code, np.zeros(len(self.median_by_code), np.int64)]
            self.median_by_code[code] = self._medians.get(plu, 0)
        return code

    def software_code(self, software_id: str) -> int:
        """A dense code for a software id (0: none reported)."""
        return self.software_codes.setdefault(software_id, len(self.software_codes))

    def market_of(self, scale: int) -> str:
        code = int(self.market_code[scale])
        return next(m for m, c in self.market_codes.items() if c == code)

    # -- scales and versions ---------------------------------------------------------------------------
    def index_of(self, device: str) -> int:
        """The dense index of ``device``, adding it (without facts) if new."""
        i = self.index.get(device)
        if i is None:
            if self._n == len(self.latest):
                self._grow_scales()
            i = self.index.add(device)
            self._n += 1
        return i

    def set(self, device: str, fact: ScaleFact) -> int:
        """Record a verification of ``device``, in force from ``fact.verified_ms`` (from the start when
        absent). A verification at the same time as one already known replaces it (a registry reload).
        Returns the version."""
        i = self.index_of(device)
        from_ms = FROM_START if fact.verified_ms is None else int(fact.verified_ms)
        versions = self._versions.get(i)
        if versions is None:  # new, or its one version came from columns
            latest = int(self.latest[i])
            versions = self._versions[i] = [(int(self.v_from_ms[latest]), latest)] if latest else []
        v = next((ver for t, ver in versions if t == from_ms), 0)
        if v == 0:
            if self._nv == len(self.known):
                self._grow_versions()
            v = self._nv
            self._nv += 1
            versions.append((from_ms, v))
            versions.sort()
            self._search = None
        self._packed = None
        self.known[v] = True
        self.v_scale[v] = i
        self.v_from_ms[v] = from_ms
        self.coefficient[v] = fact.coefficient
        self.e_mg[v] = fact.e_mg
        self.d_mg[v] = fact.d_mg or fact.e_mg
        self.max_mg[v] = fact.max_g * 1000
        self.class_code[v] = CLASS_CODES[fact.accuracy_class]
        self.has_zero[v] = fact.zero_counts is not None
        self.zero_counts[v] = fact.zero_counts or 0
        self.calibration_events[v] = fact.calibration_events
        self.configuration_events[v] = fact.configuration_events
        self.verification_due_ms[v] = _NEVER if fact.verification_due_ms is None else fact.verification_due_ms
        self.approved_code[v] = self.software_code(fact.approved_software_id) if fact.approved_software_id else 0
        if fact.market is not None:
            self.market_code[i] = self.market_codes.setdefault(fact.market, len(self.market_codes))
        self.latest[i] = versions[-1][1]
        self.n_versions[i] = len(versions)
        return v

    def set_unverified_from(self, unverified: Mapping[str, str | int]) -> None:
        """:meth:`set_unverified` from a mapping (a :class:`RegistryDocument`'s ``unverified``)."""
        ids = np.array([d.encode() for d in unverified], dtype=np.bytes_)
        since = [FROM_START if v == "none" else int(v) for v in unverified.values()]
        self.set_unverified(ids, np.array(since, dtype=np.int64))

    def set_unverified(self, ids: npt.NDArray[np.bytes_], from_ms: I64) -> None:
        """The registry's word on which scales have no valid verification (see :attr:`unverified_from_ms`):
        ``from_ms[i]`` for device ``ids[i]`` (int64 max: it has one); every scale not named has one. Scales
        not known yet get an index (they are few: registered and never verified)."""
        self.unverified_from_ms[:] = _NEVER
        named = np.flatnonzero(from_ms != _NEVER)
        at = self.index.positions(ids[named]) if len(named) else np.zeros(0, dtype=np.intp)
        for k in np.flatnonzero(at < 0).tolist():
            at[k] = self.index_of(ids[named[k]].decode())
        self.unverified_from_ms[at] = from_ms[named]

    def current(self, device: str) -> ScaleFact | None:
        """The facts in force now (the newest verification), or None."""
        i = self.index.get(device)
        if i is None or self.latest[i] == 0:
            return None
        v = int(self.latest[i])
        software = next((s for s, c in self.software_codes.items() if c == self.approved_code[v] and c), None)
        return ScaleFact(
            coefficient=float(self.coefficient[v]),
            e_mg=int(self.e_mg[v]),
            d_mg=int(self.d_mg[v]),
            max_g=int(self.max_mg[v]) // 1000,
            accuracy_class=list(CLASS_CODES)[int(self.class_code[v])],
            zero_counts=int(self.zero_counts[v]) if self.has_zero[v] else None,
            calibration_events=int(self.calibration_events[v]),
            configuration_events=int(self.configuration_events[v]),
            verification_due_ms=None if self.verification_due_ms[v] == _NEVER else int(self.verification_due_ms[v]),
            approved_software_id=software,
            market=self.market_of(i) if self.market_code[i] else None,
            verified_ms=None if self.v_from_ms[v] == FROM_START else int(self.v_from_ms[v]),
        )

    def in_force(
        self, scale: I64, ts: I64, calibrations: I64 | None = None, configurations: I64 | None = None
    ) -> npt.NDArray[np.intp]:
        """The version in force for each (scale, time): the latest verification at or before the time; a
        row older than a scale's first known verification gets that first one (the best facts there are).

        With the row's sealed counters: a row whose counters are not those of the version its time points
        to, but are exactly those of the verification just before or after it, belongs to that one (a
        scale's clock a few hours off near a re-verification must not make its sales look tampered)."""
        version = self.latest[scale]
        several = np.flatnonzero(self.n_versions[scale] > 1)
        if len(several):
            keys, ids = self._search_arrays()
            s, t = scale[several].astype(np.int64), np.clip(ts[several], 0, (1 << _KEY_SHIFT) - 1)
            pos = np.searchsorted(keys, (s << _KEY_SHIFT) | t, side="right") - 1
            first = np.searchsorted(keys, s << _KEY_SHIFT, side="left")  # the scale's earliest version
            last = np.searchsorted(keys, (s + 1) << _KEY_SHIFT, side="left") - 1  # and its latest
            pos = np.maximum(pos, first)
            if calibrations is not None and configurations is not None:
                cal, conf = calibrations[several], configurations[several]

                def matches(p: npt.NDArray[np.intp]) -> npt.NDArray[np.bool_]:
                    v = ids[p]
                    result: npt.NDArray[np.bool_] = (self.calibration_events[v] == cal) & (
                        self.configuration_events[v] == conf
                    )
                    return result

                off = ~matches(pos)
                for step in (1, -1):  # the next verification, then the previous one
                    near = np.clip(pos + step, first, last)
                    move = off & (near != pos) & matches(near)
                    pos = np.where(move, near, pos)
                    off &= ~move
            version[several] = ids[pos]
        return version

    def _search_arrays(self) -> tuple[I64, npt.NDArray[np.intp]]:
        if self._search is None:
            pairs = sorted(
                ((scale << _KEY_SHIFT) | max(0, min(t, (1 << _KEY_SHIFT) - 1)), v)
                for scale, versions in self._versions.items()
                if len(versions) > 1
                for t, v in versions
            )
            self._search = (
                np.array([k for k, _ in pairs], dtype=np.int64),
                np.array([v for _, v in pairs], dtype=np.intp),
            )
        return self._search

    #: the per-version facts every row needs, gathered in one go by :meth:`take_packed`
    PACKED = (
        "known",
        "e_mg",
        "d_mg",
        "class_code",
        "max_mg",
        "has_zero",
        "zero_counts",
        "calibration_events",
        "configuration_events",
        "verification_due_ms",
        "approved_code",
    )

    def take_packed(self, versions: npt.NDArray[np.intp]) -> I64:
        """The :data:`PACKED` facts for each row's version, as one (facts, rows) matrix: one gather
        instead of one per fact."""
        if self._packed is None or self._packed.shape[1] != self._nv:
            self._packed = np.stack([getattr(self, n)[: self._nv].astype(np.int64) for n in self.PACKED])
        result: I64 = np.take(self._packed, versions, axis=1)  # (facts, rows): each fact's column contiguous
        return result

    def take(self, name: str, versions: npt.NDArray[np.intp]) -> npt.NDArray[Any]:
        """Fact ``name`` for each row's version."""
        values: npt.NDArray[Any] = np.take(getattr(self, name), versions)  # faster than fancy indexing
        return values

    # -- construction ----------------------------------------------------------------------------------
    @classmethod
    def from_mapping(
        cls,
        scales: Mapping[str, Mapping[str, Any] | ScaleFact],
        commodity_median: Mapping[str, int] | None = None,
        verifications: Iterable[Mapping[str, Any] | Verification] = (),
    ) -> ScaleFacts:
        """Facts from plain data: ``{device: ScaleFact fields}``, ``{plu: fen per kg}`` and an optional
        verification history (raises pydantic's ValidationError, naming the field, on a malformed entry)."""
        facts = cls()
        for device, fact in scales.items():
            facts.set(device, fact if isinstance(fact, ScaleFact) else ScaleFact(**fact))
        for entry in verifications:
            ver = entry if isinstance(entry, Verification) else Verification(**entry)
            facts.set(ver.device, ScaleFact(**ver.model_dump(exclude={"device"})))
        facts.commodity_median = dict(commodity_median or {})
        return facts

    @classmethod
    def from_document(cls, doc: Mapping[str, Any] | RegistryDocument) -> ScaleFacts:
        """Facts from a :class:`RegistryDocument` (validated; an error names the field)."""
        parsed = doc if isinstance(doc, RegistryDocument) else RegistryDocument.model_validate(doc)
        facts = cls.from_mapping(parsed.scales, parsed.commodity_median, parsed.verifications)
        facts.set_unverified_from(parsed.unverified)
        return facts

    @classmethod
    def from_columns(
        cls, index: DeviceIndex, columns: FactColumns, commodity_median: Mapping[str, int] | None = None
    ) -> ScaleFacts:
        """Facts of a whole fleet at once: ``columns`` row ``i`` belongs to device ``i`` of ``index`` (the
        index is taken over, not copied). Validated vectorised with ScaleFact's bounds (raises
        :class:`anti_cheat.fact_columns.FactError` naming the device and the field)."""
        if len(columns) != len(index):
            raise ValueError(f"{len(columns)} rows of facts for {len(index)} devices")
        columns.validate(index.name)
        facts = cls()
        n, rows = len(index), np.flatnonzero(columns.has)
        facts.index, facts._n, facts._nv = index, n, 1 + len(rows)
        scales = max(16, n)
        facts.latest = np.zeros(scales, dtype=np.intp)
        facts.latest[rows] = np.arange(1, 1 + len(rows))
        facts.n_versions = np.zeros(scales, dtype=np.int64)
        facts.n_versions[rows] = 1
        market = facts._codes(facts.market_codes, columns.markets)[columns.market]
        facts.market_code = np.zeros(scales, dtype=np.int64)
        facts.market_code[:n] = market
        facts.unverified_from_ms = np.full(scales, _NEVER, dtype=np.int64)
        cap = max(16, facts._nv)
        for name in ("known", "has_zero", "coefficient", *cls._VERSION_FIELDS):
            old = getattr(facts, name)
            new = np.ones(cap, dtype=old.dtype) if name == "coefficient" else np.zeros(cap, dtype=old.dtype)
            new[0] = old[0]
            setattr(facts, name, new)
        for name, values in facts._version_values(columns, rows):  # one field at a time: a low peak
            getattr(facts, name)[1 : facts._nv] = values
        facts.commodity_median = dict(commodity_median or {})
        return facts

    def update_from_columns(self, ids: npt.NDArray[np.bytes_], columns: FactColumns) -> list[str]:
        """Take over the facts of a fresh load (``columns`` row ``i`` is the device ``ids[i]``) where they
        differ from those in force (a registry reload): only the devices that changed are set again, in
        place. Validated as :meth:`from_columns`; returns the devices whose facts changed."""
        columns.validate(lambda r: str(ids[r].decode()))
        rows = np.flatnonzero(columns.has)
        at = self.index.positions(ids[rows])
        v = np.where(at >= 0, self.latest[np.maximum(at, 0)], 0)
        same = (at >= 0) & (v > 0) & (self.market_code[np.maximum(at, 0)] == self._market_values(columns, rows))
        for name, value in self._version_values(columns, rows):
            same &= getattr(self, name)[v] == (at if name == "v_scale" else value)
        changed = [str(ids[r].decode()) for r in rows[~same].tolist()]
        for device, r in zip(changed, rows[~same].tolist(), strict=True):
            self.set(device, columns.fact(r))
        return changed

    @staticmethod
    def _codes(codes: dict[str, int], table: list[str]) -> I64:
        """Our codes for the strings of ``table`` (a column's own codes), added where new; "" is 0."""
        return np.array([codes.setdefault(s, len(codes)) if s else 0 for s in table], dtype=np.int64)

    def _market_values(self, columns: FactColumns, rows: npt.NDArray[np.intp]) -> I64:
        values: I64 = self._codes(self.market_codes, columns.markets)[columns.market[rows]]
        return values

    def _version_values(
        self, columns: FactColumns, rows: npt.NDArray[np.intp]
    ) -> Iterator[tuple[str, npt.NDArray[Any]]]:
        """The per-version arrays for ``rows`` of ``columns``, as :meth:`set` would store them, one by one."""
        from .fact_columns import NONE

        def col(name: str) -> I64:
            values: I64 = columns.ints[name][rows]
            return values

        yield "known", np.ones(len(rows), dtype=np.bool_)
        yield "v_scale", rows.astype(np.int64)
        verified = col("verified_ms")
        yield "v_from_ms", np.where(verified == NONE, FROM_START, verified)
        del verified
        yield "coefficient", columns.coefficient[rows]
        e, d = col("e_mg"), col("d_mg")
        yield "e_mg", e
        yield "d_mg", np.where(d == NONE, e, d)
        del e, d
        yield "max_mg", col("max_g") * 1000
        yield "class_code", columns.class_code[rows]
        zero = col("zero_counts")
        yield "has_zero", zero != NONE
        yield "zero_counts", np.where(zero == NONE, 0, zero)
        del zero
        yield "calibration_events", col("calibration_events")
        yield "configuration_events", col("configuration_events")
        due = col("verification_due_ms")
        yield "verification_due_ms", np.where(due == NONE, _NEVER, due)
        del due
        yield "approved_code", self._codes(self.software_codes, columns.software_ids)[columns.software[rows]]
