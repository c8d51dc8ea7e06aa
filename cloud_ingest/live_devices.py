"""Devices known to the ingest, kept current from a source that can change (the registry).

The ingest reads keys, revocations, tags and scale facts from memory; every ``refresh_s`` (on the batch
thread, between batches) it asks the source for its revision and reloads only when that changed. A scale
whose verification changed gets its new facts and its anti-cheat baselines restart
(:meth:`anti_cheat.EngineState.reset`): after a recorded verification, its CUSUMs and digit counts start
from zero. A failed reload keeps the last good view and is counted.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from anti_cheat import Engine

from .device_table import DeviceTable
from .sensor_alerts import AlertBook

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Snapshot:
    """What a source gives: its devices as a table (its fact columns kept, not built into facts) and
    the revision they are of."""

    table: DeviceTable
    revision: int


class LiveDevices:
    """A :class:`DeviceTable` that follows its source. Build the engine on ``current.facts``, pass the
    methods below to the pipeline and worker, call :meth:`attach`, and :meth:`refresh` between batches.

    ``first``: the table to start from (a current snapshot), instead of loading the source;
    ``on_reload``: called with each reloaded snapshot, before its fact columns are released (the
    ingest writes its snapshot file there)."""

    def __init__(
        self,
        revision: Callable[[], int],
        load: Callable[[bool], Snapshot],
        *,
        refresh_s: float = 10.0,
        first: Snapshot | None = None,
        on_reload: Callable[[Snapshot], object] | None = None,
    ) -> None:
        """``load(with_facts)`` reads the source (``with_facts``: build the table's facts too)."""
        self._revision = revision
        self._load = load
        self.refresh_s = refresh_s
        self.on_reload = on_reload
        first = first or load(True)
        self.current = first.table
        self.revision = first.revision
        self._checked = time.monotonic()
        self.reloads = 0
        self.min_refresh_s = 1.0  # how soon after a look a device we do not know may make us look again
        self._urgent = False
        self.reload_errors = 0
        self.baselines_reset = 0
        self.engine: Engine | None = None
        self.alert_book: AlertBook | None = None

    def attach(self, engine: Engine, alert_book: AlertBook) -> None:
        """What a reload updates in place: the engine's facts and state, the alert limits."""
        self.engine, self.alert_book = engine, alert_book
        alert_book.limits = self.current.alert_limits()
        alert_book.crops = self.current.crops()

    def key_for(self, device: str) -> bytes | None:
        return self.current.key_for(device)

    def is_revoked(self, device: str) -> bool:
        return self.current.is_revoked(device)

    def tags_for(self, device: str) -> dict[str, str]:
        return self.current.tags_for(device)

    def is_known(self, device: str) -> bool:
        return self.current.is_known(device)

    def vendor_for(self, device: str) -> tuple[str, str] | None:
        return self.current.vendor_for(device)

    def profile_for(self, device: str) -> str | None:
        return self.current.profile_for(device)

    def partition_key(self, device: str) -> str:
        return self.current.partition_key(device)

    def request_refresh(self) -> None:
        """A message came from a device we do not know: look at the source at the next batch (at most
        every ``min_refresh_s``), not only after ``refresh_s`` (a device provisioned a moment ago)."""
        self._urgent = True

    def refresh(self, *, force: bool = False) -> bool:
        """Reload if the source changed since the last look (at most every ``refresh_s``); True if reloaded."""
        now = time.monotonic()
        wait_s = self.min_refresh_s if self._urgent else self.refresh_s
        if not force and now - self._checked < wait_s:
            return False
        self._checked = now
        self._urgent = False
        try:
            if self._revision() == self.revision and not force:
                return False
            snap = self._load(False)
            self._apply(snap)
        except Exception:  # the source is a database: keep the last good view
            self.reload_errors += 1
            log.exception("device registry reload failed; keeping the previous view")
            return False
        if self.on_reload is not None:
            self.on_reload(snap)
        snap.table.release_columns()
        return True

    def _apply(self, snap: Snapshot) -> None:
        fresh, old = snap.table, self.current
        if self.engine is not None and fresh.fact_columns is not None:
            facts = self.engine.facts  # only what changed: a reload costs little on the batch thread
            facts.update_from_columns(fresh.index.ids, fresh.fact_columns)
            at = old.index.positions(fresh.index.ids)
            vid = fresh.verification.astype(np.int64)
            before = np.where(at >= 0, old.verification[np.maximum(at, 0)], 0).astype(np.int64)
            for row in np.flatnonzero((vid != 0) & (vid != before)).tolist():
                device = fresh.index.name(row)
                self.engine.state.reset(facts.index_of(device))
                self.baselines_reset += 1
                log.info("%s: new verification %d, anti-cheat baselines restart", device, int(vid[row]))
            facts.set_unverified(fresh.index.ids, fresh.unverified)  # a verification failed, or one recorded
        if self.alert_book is not None:
            self.alert_book.limits = fresh.alert_limits()
            self.alert_book.crops = fresh.crops()
        self.current = fresh
        self.revision = snap.revision
        self.reloads += 1
