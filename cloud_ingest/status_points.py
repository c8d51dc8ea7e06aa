"""Slow-moving series for supervisors' panels and maps, written by the ingest beside the records:

- ``place``: each district, market, stall and planting base of the registry with its WGS-84 position
  (tags ``kind``, ``id``, ``name``, ``district``, and ``market`` for a stall; fields ``lat``, ``lon``, and a
  stall's ``vendor`` and ``licence``), so a Grafana Geomap reads positions from InfluxDB, with what is
  open there: ``open_flags`` (markets and stalls: flags raised at their scales in the last 24 h) and
  ``open_alerts`` (planting bases: alerts open in the ingest's alert book for the base's devices;
  markets: positive and suspect rapid tests of samples from its stalls in the last 24 h), integers
  (:mod:`cloud_ingest.place_findings` counts them). Every place with a position is written every
  ``period_s``, changed or not: the map panels read ``last()`` within the dashboard's time range, which
  must hold a point whatever range is picked; places are few (thousands, not millions). Places without a
  position are left out (a map has nowhere to draw them).
- ``scale_status``: per scale (tags ``device``, ``district``, ``market``, ``stall``, ``vendor``), fields
  ``online`` (integer 1/0: a message admitted within ``online_s``; an integer so that panels can
  ``sum()`` it, which InfluxQL refuses on booleans), ``last_seen_ms``, ``last_sale_ms``,
  ``last_verification_ms`` (the latest verification, passed or failed), ``verification_due_ms`` (of the
  last passed one) and ``verified`` (integer 1/0: a valid verification now: passed, not followed by a
  failed one, not past due). Written at start for every scale, then every ``period_s`` for the scales
  whose fields changed, and for every scale again after ``refresh_s`` (an hour) unchanged, so a panel
  reading ``last()`` over a range of an hour or more sees every scale; at the time of writing.

Cost for a large fleet: the state is arrays over the device table's rows (one int64 or bool each per
device), the comparison with what was last written is vectorised, and only changed scales become lines,
so a minute of a million idle scales costs a few array operations; the pipeline hands over the devices
it saw as two small dicts (:attr:`Pipeline.seen_ms`, :attr:`Pipeline.last_sale_ms`). The first write
after a start covers every scale once, at most ``max_lines`` (50 000) a call, so the batch thread is never
held for long (a million scales: 20 steps). Writes go straight to InfluxDB;
if it is away they are tried again at the next period (nothing is spooled: the next status supersedes).

One writer per ingest: with ``partitions`` > 1 or NATS partitions each worker sees only its devices, so
the writer is built only for a single worker (docs/operations.md says so).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping

import numpy as np
import numpy.typing as npt

from anti_cheat import ScaleFacts
from anti_cheat.facts import NEVER
from device_profiles.influx_schema import escape_tag
from device_profiles.loader import builtin_profiles
from device_profiles.metrology import FROM_START

from .derived_points import field_text, tag_text
from .device_table import DeviceTable
from .errors import StoreRejected, StoreUnavailable
from .influx import InfluxClient
from .place_findings import PlaceFindings

log = logging.getLogger(__name__)

I64 = npt.NDArray[np.int64]
_STATUS = ("online", "last_seen_ms", "last_sale_ms", "last_verification_ms", "verification_due_ms", "verified")
_PLACE_TAGS = ("kind", "id", "name", "district", "market")


class StatusWriter:
    """Writes ``place`` and ``scale_status`` points (see the module docstring). Call :meth:`tick` on the
    batch thread between batches; it does nothing until ``period_s`` has passed."""

    def __init__(
        self,
        store: InfluxClient,
        table: Callable[[], DeviceTable],
        facts: Callable[[], ScaleFacts],
        seen_ms: dict[str, int],
        last_sale_ms: dict[str, int],
        *,
        period_s: float = 60.0,
        online_s: float = 600.0,
        clock: Callable[[], float] = time.time,
        max_lines: int = 50_000,
        findings: PlaceFindings | None = None,
        open_alerts: Callable[[], Mapping[str, int]] = dict,
        refresh_s: float = 3_600.0,
    ) -> None:
        """``max_lines``: scale_status lines per tick at most; the rest follow at the next calls, without
        waiting for the period (a first write for a million scales is spread over 20 batcher steps).
        ``findings``: the pipeline's flags and rapid tests per place (None: counted as 0); ``open_alerts``:
        the alerts open per device (:meth:`AlertBook.open_by_device`); ``refresh_s``: a scale whose status
        has not changed is written again after this long, so a panel's ``last()`` over any range at least
        this long finds every scale (an idle scale's overdue verification included)."""
        self.refresh_ms = int(refresh_s * 1000)
        self.findings = findings
        self._open_alerts = open_alerts
        self.store = store
        self._table_of, self._facts_of = table, facts
        self._seen_in, self._sales_in = seen_ms, last_sale_ms
        self.period_s, self.online_s, self.clock = period_s, online_s, clock
        self._table: DeviceTable | None = None
        self._last_tick = -float("inf")
        self.max_lines = max_lines
        self._more = False  # changed scales left for the next call
        self._pending: npt.NDArray[np.intp] = np.zeros(0, np.intp)  # the scales of the write in hand
        self._seen: I64 = np.zeros(0, np.int64)  # per table row: last message admitted (wall ms), 0: none
        self._sale: I64 = np.zeros(0, np.int64)  # ... and its last sale's ts
        self._written: dict[str, I64] = {}  # what was last written per row (-1: nothing)
        self._written_at: I64 = np.zeros(0, np.int64)  # ... and when (wall ms)
        self.points_written = 0
        self.write_errors = 0

    # -- per table -------------------------------------------------------------------------------------
    def _adopt(self, table: DeviceTable) -> None:
        """Arrays over ``table``'s rows, carried over from the previous table by device id."""
        n = len(table)
        seen, sale = np.zeros(n, np.int64), np.zeros(n, np.int64)
        written = {name: np.full(n, -1, np.int64) for name in _STATUS}
        written_at = np.zeros(n, np.int64)
        if self._table is not None:
            at = self._table.index.positions(table.index.ids)
            # a device index grows in place (a device first seen between reloads is appended to it), so a
            # position may lie past the arrays sized when that table was adopted: such a device is new here
            kept = (at >= 0) & (at < len(self._seen))
            for new, old in ((seen, self._seen), (sale, self._sale), (written_at, self._written_at)):
                new[kept] = old[at[kept]]
            for name, col in written.items():
                col[kept] = self._written[name][at[kept]]
        self._seen, self._sale, self._written, self._written_at = seen, sale, written, written_at
        kinds = {pid: p.kind for pid, p in builtin_profiles().items()}
        is_scale = np.array([kinds.get(p) == "scale" for p in table.tables["profile"]], dtype=np.bool_)
        self._scale = is_scale[table.columns["profile"]]
        facts = self._facts_of()
        pos = facts.index.positions(table.index.ids)
        version = np.where(pos >= 0, facts.latest[np.maximum(pos, 0)], 0)
        passed_at = np.where(version > 0, facts.v_from_ms[version], -1)
        self._passed_at = np.where(passed_at == FROM_START, -1, passed_at)
        due = facts.verification_due_ms[version]
        self._due = np.where((version > 0) & (due != NEVER), due, -1)
        failed = table.unverified
        self._failed_at = np.where(failed == FROM_START, -1, np.where(failed == NEVER, -1, failed))
        # a passed verification on record (one without a time, from a devices file, counts), not followed by
        # a failed one
        self._valid = (version > 0) & (self._failed_at < 0) & (failed != FROM_START)
        self._vendors(table)
        self._place_heads(table)
        self._table = table

    def _vendors(self, table: DeviceTable) -> None:
        """Each device's stall's vendor, as a code into :attr:`_vendor_names` ("" for none): one pair of
        tag codes per device, its distinct pairs looked up once."""
        by_place = {
            (str(p.get("market") or ""), str(p["id"])): str(p.get("vendor") or "")
            for p in table.places
            if p.get("kind") == "stall"
        }
        markets, stalls = table.tables["tag_market"], table.tables["tag_stall"]
        codes = table.columns["tag_market"].astype(np.int64) * len(stalls) + table.columns["tag_stall"]
        pairs, inverse = np.unique(codes, return_inverse=True)
        self._vendor_names = [
            by_place.get((markets[c // len(stalls)], stalls[c % len(stalls)]), "") if c % len(stalls) else ""
            for c in pairs.tolist()
        ]
        self._vendor_code = inverse.reshape(-1)
        self._vendor_text = np.array(
            [f",vendor={escape_tag(v)}" if v else "" for v in self._vendor_names], dtype=object
        )
        self._tag_text = {
            t: np.array([f",{t}={escape_tag(v)}" if v else "" for v in table.tables[f"tag_{t}"]], dtype=object)
            for t in ("district", "market", "stall")
        }

    # -- each period -----------------------------------------------------------------------------------
    def tick(self, *, force: bool = False) -> int:
        """Write the places and the scales whose status changed, if ``period_s`` has passed (or ``force``;
        a large first write goes on at the next calls without waiting); the points written."""
        now = self.clock()
        due = force or now - self._last_tick >= self.period_s
        if not due and not self._more:
            return 0
        if due:
            self._last_tick = now
        table = self._table_of()
        if table is not self._table:
            self._adopt(table)
        lines = self._place_lines(table, int(now * 1000)) if due else []
        placed = len(lines)
        lines += self._status_lines(int(now * 1000))
        if not lines:
            return 0
        try:
            self.store.write(lines)
        except (StoreUnavailable, StoreRejected) as exc:
            if self.write_errors == 0:
                log.warning("status points not written (%s); tried again each period (logged once)", exc)
            self.write_errors += 1
            self._more = False  # and not before the period
            for col in self._written.values():
                col[self._pending] = -1
            return 0
        self.points_written += len(lines)
        log.debug("wrote %d place and %d scale_status points", placed, len(lines) - placed)
        return len(lines)

    def _take(self, incoming: dict[str, int], into: I64) -> None:
        """Move the pipeline's dict of ``device → ms`` into ``into`` (kept as the maximum)."""
        if not incoming:
            return
        pairs = list(incoming.items())
        incoming.clear()
        assert self._table is not None
        at = self._table.index.positions(np.array([d.encode() for d, _ in pairs], dtype=np.bytes_))
        values = np.array([v for _, v in pairs], dtype=np.int64)
        ok = (at >= 0) & (at < len(into))  # past the arrays: appended to the index since; counted after a reload
        np.maximum.at(into, at[ok], values[ok])

    def _status_lines(self, now_ms: int) -> list[str]:
        self._take(self._seen_in, self._seen)
        self._take(self._sales_in, self._sale)
        current = {
            "online": ((self._seen > 0) & (now_ms - self._seen <= self.online_s * 1000)).astype(np.int64),
            "last_seen_ms": self._seen,
            "last_sale_ms": self._sale,
            "last_verification_ms": np.maximum(self._passed_at, self._failed_at),
            "verification_due_ms": self._due,
            "verified": (self._valid & ((self._due < 0) | (self._due >= now_ms))).astype(np.int64),
        }
        scales = self._scale | (self._sale > 0)
        changed = np.zeros(len(scales), np.bool_)
        for name, col in current.items():
            changed |= col != self._written[name]
        stale = now_ms - self._written_at >= self.refresh_ms  # unchanged for refresh_s: written again
        rows = np.flatnonzero(scales & (changed | stale))
        self._more = len(rows) > self.max_lines
        rows = rows[: self.max_lines]
        self._pending = rows
        if not len(rows):
            return []
        for name, col in current.items():
            self._written[name][rows] = col[rows]
        self._written_at[rows] = now_ms
        assert self._table is not None
        table, ns = self._table, now_ms * 1_000_000
        cols = {name: col[rows].tolist() for name, col in current.items()}
        tags = [self._tag_text[t][table.columns[f"tag_{t}"][rows]].tolist() for t in ("district", "market", "stall")]
        vendor = self._vendor_text[self._vendor_code[rows]].tolist()
        out = []
        for k, row in enumerate(rows.tolist()):
            # by hand, not through tag_text/field_text: a first write has a line per scale (29 µs a line
            # through the general path, a million lines); tag keys are in sorted order already
            device = escape_tag(table.index.name(row))
            ints = "".join(f",{n}={v}i" for n in _STATUS[1:5] if (v := cols[n][k]) > 0)
            out.append(
                f"scale_status,device={device}{tags[0][k]}{tags[1][k]}{tags[2][k]}{vendor[k]}"
                f" online={cols['online'][k]}i,verified={cols['verified'][k]}i{ints} {ns}"
            )
        return out

    def _place_heads(self, table: DeviceTable) -> None:
        """Each place's line up to its counts, made once per table: a tick only adds the counts (a
        fleet with a hundred thousand stalls costs a string join each, not a formatting of every field)."""
        self._heads: list[tuple[str, str, str, str]] = []  # (kind, id, market, line without counts and time)
        for p in table.places:
            lat, lon = p.get("lat"), p.get("lon")
            if lat is None or lon is None:
                continue
            kind, pid, market = str(p.get("kind")), str(p.get("id")), str(p.get("market") or "")
            fields: dict[str, object] = {"lat": float(lat), "lon": float(lon)}
            if kind == "stall":
                fields.update(vendor=p.get("vendor"), licence=p.get("licence"))
            tags = {t: str(p[t]) for t in _PLACE_TAGS if p.get(t)}
            self._heads.append((kind, pid, market, f"place,{tag_text(tags)} {field_text(fields)}"))

    def _place_lines(self, table: DeviceTable, now_ms: int) -> list[str]:
        flags_at_market, flags_at_stall = self.findings.flags_by_place() if self.findings else ({}, {})
        tests_at_market = self.findings.tests_by_market() if self.findings else {}
        alerts_at_base: dict[str, int] = {}
        for device, n in self._open_alerts().items():  # few: only devices with an alert open
            base = table.tags_for(device).get("base")
            if base:
                alerts_at_base[base] = alerts_at_base.get(base, 0) + n
        out = []
        ts = f" {now_ms * 1_000_000}"
        for kind, pid, market, head in self._heads:
            if kind == "stall":
                out.append(f"{head},open_flags={flags_at_stall.get((market, pid), 0)}i{ts}")
            elif kind == "market":
                flags, tests = flags_at_market.get(pid, 0), tests_at_market.get(pid, 0)
                out.append(f"{head},open_flags={flags}i,open_alerts={tests}i{ts}")
            elif kind == "base":
                out.append(f"{head},open_alerts={alerts_at_base.get(pid, 0)}i{ts}")
            else:
                out.append(head + ts)
        return out
