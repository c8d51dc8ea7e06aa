"""The devices the ingest knows, as a dense table: one sorted block of device ids
(:class:`anti_cheat.device_index.DeviceIndex`), and per device a row of compact columns — its key in one
uint8 block, revoked, a profile code, one int32 code per enrichment tag into small interned tables, the
verification its facts come from — with the scale facts as columns loaded straight into
:class:`anti_cheat.ScaleFacts` (which shares the id block). A million devices cost their bytes, not a
million dicts and pydantic objects.

:class:`DeviceRows` builds a table device by device (from devices-file entries or registry rows) into
arrays, without a Python object per device kept. Lookups per message are a binary search behind a
bounded dict of the ids seen lately (see DeviceIndex).

Besides devices, a table carries the registry's places (districts, markets, stalls, planting bases: kind,
id, name, district, position, a stall's vendor and licence), a few thousand small documents, for the
ingest's ``place`` points and the vendor on flags and ``scale_status``; and per device the registry's word
on a scale without a valid verification (column ``unverified``, see
:attr:`anti_cheat.ScaleFacts.unverified_from_ms`).
"""

from __future__ import annotations

from array import array
from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt
from pydantic import ValidationError

from anti_cheat import ScaleFacts
from anti_cheat.device_index import HOT_MAX, DeviceIndex, check_ids
from anti_cheat.fact_columns import FactColumns, FactError, FactRows
from anti_cheat.facts import NEVER
from device_profiles.envelope import TAG_VALUE_RE
from device_profiles.influx_schema import ENRICHMENT_TAGS
from device_profiles.metrology import FROM_START
from device_profiles.sensor_limits import Limit

TAGS = tuple(ENRICHMENT_TAGS)


class DeviceTable:
    """Keys, revocations, profiles, tags and facts of every device (see the module docstring). Columns
    are indexed by the device's row, its position in ``index``."""

    def __init__(
        self,
        index: DeviceIndex,
        columns: Mapping[str, npt.NDArray[Any]],
        tables: Mapping[str, list[str]],
        *,
        crops: Mapping[str, str],
        limits: Mapping[str, Mapping[str, Mapping[str, Any]]],
        fact_columns: FactColumns | None,
        commodity_median: Mapping[str, int] | None = None,
        with_facts: bool = True,
        places: list[dict[str, Any]] | None = None,
    ) -> None:
        """``columns``: keys (n × width uint8), key_len, revoked, profile, verification, and ``tag_<name>``
        per tag of :data:`TAGS`; ``tables``: the strings of each code column (``profile``, ``tag_<name>``;
        code 0 is "none"). ``with_facts=False`` leaves :attr:`facts` empty and keeps ``fact_columns``
        (a reload that updates an engine's facts in place)."""
        self.index = index
        self.columns = dict(columns)
        self.tables = {name: list(t) for name, t in tables.items()}
        self._crops = dict(crops)
        self._limits = {d: {ch: dict(spec) for ch, spec in lim.items()} for d, lim in limits.items()}
        self.commodity_median = dict(commodity_median or {})
        self.fact_columns = fact_columns
        self.places = list(places or [])
        self._vendors: dict[tuple[str, str], tuple[str, str]] | None = None
        if "unverified" not in self.columns:  # a table of a source that says nothing about it
            self.columns["unverified"] = np.full(len(index.ids), NEVER, dtype=np.int64)
        if with_facts and fact_columns is not None:
            self.facts = ScaleFacts.from_columns(index, fact_columns, self.commodity_median)
            self.facts.set_unverified(index.ids, self.unverified)
        else:
            self.facts = ScaleFacts.from_mapping({}, self.commodity_median)
        self._keys, self._key_len = self.columns["keys"], self.columns["key_len"]
        self._revoked, self._profile = self.columns["revoked"], self.columns["profile"]
        self._tag_cols = [(t, self.columns[f"tag_{t}"], self.tables[f"tag_{t}"]) for t in TAGS]
        self._tags_hot: dict[str, dict[str, str]] = {}

    def __len__(self) -> int:
        return len(self.index.ids)

    @property
    def verification(self) -> npt.NDArray[np.int64]:
        """The verification each device's facts come from (0: none)."""
        v: npt.NDArray[np.int64] = self.columns["verification"]
        return v

    @property
    def unverified(self) -> npt.NDArray[np.int64]:
        """Per device, from when the registry says it has no valid verification (see the module docstring)."""
        v: npt.NDArray[np.int64] = self.columns["unverified"]
        return v

    def vendor_for(self, device: str) -> tuple[str, str] | None:
        """The vendor and business licence of the stall the device stands at (None: no stall, or unknown)."""
        if self._vendors is None:
            self._vendors = {
                (str(p.get("market")), str(p["id"])): (str(p.get("vendor") or ""), str(p.get("licence") or ""))
                for p in self.places
                if p.get("kind") == "stall"
            }
        tags = self.tags_for(device)
        if "stall" not in tags:
            return None
        return self._vendors.get((tags.get("market", ""), tags["stall"]))

    def release_columns(self) -> None:
        """Drop the fact columns once the facts are built and the snapshot written."""
        self.fact_columns = None

    def _row(self, device: str) -> int:
        i = self.index.get(device)
        return -1 if i is None or i >= len(self._key_len) else i

    def key_for(self, device: str) -> bytes | None:
        i = self._row(device)
        if i < 0 or not (n := int(self._key_len[i])):
            return None
        return bytes(self._keys[i, :n])

    def is_revoked(self, device: str) -> bool:
        i = self._row(device)
        return i >= 0 and bool(self._revoked[i])

    def is_known(self, device: str) -> bool:
        i = self._row(device)
        return i >= 0 and bool(self._key_len[i])

    def profile_for(self, device: str) -> str | None:
        """The device's profile id, which says what records it may send (None: the source names none)."""
        i = self._row(device)
        return self.tables["profile"][self._profile[i]] or None if i >= 0 else None

    def tags_for(self, device: str) -> dict[str, str]:
        """Where the device is installed (district, market, stall, base, vehicle), for InfluxDB tags."""
        tags = self._tags_hot.get(device)
        if tags is None:
            i = self._row(device)
            tags = {} if i < 0 else {t: table[c] for t, col, table in self._tag_cols if (c := int(col[i]))}
            if len(self._tags_hot) >= HOT_MAX:
                self._tags_hot.clear()
            self._tags_hot[device] = tags
        return tags

    def partition_key(self, device: str) -> str:
        """What ingest partitions are cut by: the device's market when the source knows it."""
        return self.tags_for(device).get("market") or device

    def alert_limits(self) -> dict[str, dict[str, Limit]]:
        """Per-base alert limits (``"limits": {"soil.moisture_pct": {"low": 20, "high": 45, …}}``)."""
        return {d: {ch: Limit(**spec) for ch, spec in lim.items()} for d, lim in self._limits.items()}

    def crops(self) -> dict[str, str]:
        """The crop grown at each base that names one (``"crop": "tomato"``)."""
        return self._crops

    @property
    def limits(self) -> dict[str, dict[str, dict[str, Any]]]:
        return self._limits


class DeviceRows:
    """Builds a :class:`DeviceTable` one device at a time, into compact arrays. A device added twice
    keeps its last entry (as a JSON object with a repeated key does)."""

    def __init__(self) -> None:
        self._ids: list[bytes] = []
        self._key_blob = bytearray()
        self._key_len = array("H")
        self._revoked = bytearray()
        self._verification = array("q")
        self._unverified = array("q")
        self.places: list[dict[str, Any]] = []
        self._codes: dict[str, dict[str, int]] = {"profile": {"": 0}, **{f"tag_{t}": {"": 0} for t in TAGS}}
        self._refused: set[str] = set()  # tag values that may not be InfluxDB tags
        self._cols = {name: array("i") for name in self._codes}
        self._crops: dict[str, str] = {}
        self._limits: dict[str, Mapping[str, Mapping[str, Any]]] = {}
        self._facts = FactRows()

    def __len__(self) -> int:
        return len(self._ids)

    def add(self, device: str, entry: Mapping[str, Any]) -> None:
        """A devices-file entry (:mod:`cloud_ingest.registry_file`)."""
        raw_tags = entry.get("tags") or {}
        fact = entry.get("scale")
        market = raw_tags.get("market")
        self.add_row(
            device,
            key=bytes.fromhex(entry["key"]) if entry.get("key") else None,
            revoked=bool(entry.get("revoked")),
            profile=str(entry["profile"]) if entry.get("profile") else None,
            tags=raw_tags,
            crop=str(entry["crop"]) if "crop" in entry else None,
            limits=entry.get("limits"),
            fact=fact,
            market=str(market) if market else None,
            unverified=_unverified(entry.get("unverified")),
        )

    def add_row(
        self,
        device: str,
        *,
        key: bytes | None,
        revoked: bool = False,
        profile: str | None = None,
        tags: Mapping[str, Any] | None = None,
        crop: str | None = None,
        limits: Mapping[str, Mapping[str, Any]] | None = None,
        fact: Mapping[str, Any] | None = None,
        market: str | None = None,
        verification: int = 0,
        unverified: int | None = None,
    ) -> None:
        """One device; ``tags`` values that may not be InfluxDB tags are dropped; ``market`` is the facts'
        market when ``fact`` names none; ``unverified``: from when it has no valid verification (FROM_START:
        none on record; None: it has one, or the source does not say). Raises :class:`FactError` naming the
        device for bad facts."""
        if fact is None:
            self._facts.skip()
        else:
            try:
                self._facts.add(fact, market)
            except ValidationError as exc:  # an entry ScaleFact refuses: its words, on one line
                why = "; ".join(
                    f"scale.{'.'.join(map(str, e['loc'])) or '?'}: {e['msg']} (got {e.get('input')!r})"
                    for e in exc.errors()
                )
                raise FactError(f"{device}: {why}") from exc
        if "\0" in device:
            raise ValueError(f"{device!r}: a device id may not hold a NUL character")
        self._ids.append(device.encode())
        key = key or b""
        self._key_blob += key
        self._key_len.append(len(key))
        self._revoked.append(1 if revoked else 0)
        self._verification.append(verification)
        self._unverified.append(NEVER if unverified is None else unverified)
        self._cols["profile"].append(self._code("profile", profile or ""))
        given = tags or {}
        for t in TAGS:
            self._cols[f"tag_{t}"].append(self._tag_code(t, str(given[t])) if t in given else 0)
        if crop is not None:
            self._crops[device] = crop
        if limits is not None:
            self._limits[device] = limits

    def _code(self, column: str, value: str) -> int:
        codes = self._codes[column]
        return codes.setdefault(value, len(codes))

    def _tag_code(self, tag: str, value: str) -> int:
        code = self._codes[f"tag_{tag}"].get(value)
        if code is not None:
            return code
        if value in self._refused or not TAG_VALUE_RE.fullmatch(value):
            self._refused.add(value)
            return 0
        return self._code(f"tag_{tag}", value)

    def build(self, commodity_median: Mapping[str, int] | None = None, *, with_facts: bool = True) -> DeviceTable:
        """The table, rows sorted by device id (validates the facts: :class:`FactError` names the device)."""
        return DeviceTable(**self.parts(commodity_median, with_facts=with_facts))

    def parts(self, commodity_median: Mapping[str, int] | None = None, *, with_facts: bool = True) -> dict[str, Any]:
        """What :meth:`build` gives :class:`DeviceTable` (for a subclass built from rows)."""
        ids = np.array(self._ids, dtype=np.bytes_) if self._ids else np.zeros(0, dtype="S1")
        self._ids = []
        order = np.argsort(ids, kind="stable")
        ids = ids[order]
        if len(ids) > 1 and bool(np.any(ids[1:] == ids[:-1])):
            last = np.r_[ids[1:] != ids[:-1], True]  # the last entry of each id (the sort is stable)
            order, ids = order[last], ids[last]
        lens = np.frombuffer(self._key_len, dtype=np.uint16)
        width = int(lens.max()) if len(lens) else 0
        keys = np.zeros((len(lens), width), dtype=np.uint8)
        if width and bool(np.all(lens == width)):
            keys = np.frombuffer(self._key_blob, dtype=np.uint8).reshape(len(lens), width)
        elif width:  # keys of different lengths: left-aligned in rows of the longest
            n = lens.astype(np.int64)
            starts = np.repeat(np.cumsum(n) - n, n)
            rows = np.repeat(np.arange(len(n)), n)
            keys[rows, np.arange(int(n.sum())) - starts] = np.frombuffer(self._key_blob, dtype=np.uint8)
        columns: dict[str, npt.NDArray[Any]] = {
            "keys": keys[order],
            "key_len": _narrow(lens[order]),
            "revoked": np.frombuffer(self._revoked, dtype=np.bool_)[order],
            "verification": _narrow(np.frombuffer(self._verification, dtype=np.int64)[order]),
            "unverified": np.frombuffer(self._unverified, dtype=np.int64)[order].copy(),
        }
        for name, col in self._cols.items():  # codes in the smallest type their table needs
            columns[name] = _narrow(np.frombuffer(col, dtype=np.int32)[order], len(self._codes[name]))
        return {
            "index": DeviceIndex(check_ids(ids)),
            "columns": columns,
            "tables": {name: list(codes) for name, codes in self._codes.items()},
            "crops": self._crops,
            "limits": self._limits,
            "fact_columns": self._facts.build().take(order),
            "commodity_median": commodity_median,
            "with_facts": with_facts,
            "places": self.places,
        }


def _unverified(value: Any) -> int | None:
    """A devices-file entry's ``"unverified"``: ``"none"`` (no verification on record), the UTC ms its
    latest verification failed, or absent (it has a valid one, or the file does not say)."""
    if value == "none":
        return FROM_START
    if type(value) is int and 0 <= value < NEVER:
        return value
    if value is None:
        return None
    raise ValueError(f'unverified: {value!r} is neither "none" nor a time in ms')


def _narrow(values: npt.NDArray[Any], bound: int | None = None) -> npt.NDArray[Any]:
    """``values`` (non-negative) in the smallest unsigned type that holds them (or ``bound - 1``)."""
    top = (bound - 1) if bound is not None else (int(values.max()) if len(values) else 0)
    if top < 0 or (len(values) and int(values.min()) < 0):
        return values
    return values.astype(np.min_scalar_type(top), copy=False)
