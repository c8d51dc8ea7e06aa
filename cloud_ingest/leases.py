"""Partition ownership by lease, in one JetStream key-value bucket whose ``max_age`` is the lease time.

Keys: ``worker.<id>`` (a live worker, put at every tick) and ``lease.<p>`` (the owner of partition ``p``).
A lease is taken with ``create`` (fails if the key exists) and renewed with ``update`` against the
revision we hold (fails if anyone else wrote it since); a key not renewed within the lease time is
removed by the bucket's ``max_age``, so a dead worker's leases, and its ``worker.`` key, vanish by
themselves. A worker that cannot renew (NATS away) for most of the lease time stops its partitions
itself rather than risk two owners (:meth:`Leases.renew` reports them lost).

Fair share: ``ceil(partitions / live workers)``. A worker above it releases its extras (after a
checkpoint, so the next owner starts where it stopped); below it, it takes free partitions, trying them
in an order of its own (a hash of its id) so that workers starting together collide little.
"""

from __future__ import annotations

import logging
import math
import time
import zlib

from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, StorageType
from nats.js.errors import BucketNotFoundError, KeyWrongLastSequenceError, NoKeysError
from nats.js.kv import KeyValue

from .nats_stream import lease_bucket, never_raises

log = logging.getLogger(__name__)


class Leases:
    """One worker's view and hold of the partition leases (asyncio: call on the NATS loop)."""

    def __init__(self, kv: KeyValue, worker_id: str, partitions: int, lease_s: float) -> None:
        self.kv, self.worker_id, self.partitions, self.lease_s = kv, worker_id, partitions, lease_s
        self.owned: dict[int, int] = {}  # partition → revision of our lease
        self._renewed_at: dict[int, float] = {}
        self.preference = sorted(range(partitions), key=lambda p: zlib.crc32(f"{worker_id}/{p}".encode()))

    @classmethod
    async def open(
        cls, js: JetStreamContext, stream: str, worker_id: str, partitions: int, lease_s: float, replicas: int = 1
    ) -> Leases:
        name = lease_bucket(stream)
        try:
            kv = await js.key_value(name)
        except BucketNotFoundError:
            kv = await js.create_key_value(
                KeyValueConfig(bucket=name, history=1, ttl=lease_s, storage=StorageType.FILE, replicas=replicas)
            )
        return cls(kv, worker_id, partitions, lease_s)

    async def announce(self) -> None:
        """This worker is alive (for the others' fair share)."""
        await self.kv.put(f"worker.{self.worker_id}", str(time.time()).encode())

    async def survey(self) -> tuple[list[str], set[int]]:
        """Live workers (always including us) and the partitions someone holds."""
        try:
            keys = await self.kv.keys()
        except NoKeysError:
            keys = []
        workers = {k.removeprefix("worker.") for k in keys if k.startswith("worker.")} | {self.worker_id}
        taken = {int(k.removeprefix("lease.")) for k in keys if k.startswith("lease.")}
        return sorted(workers), taken | set(self.owned)

    def share(self, workers: int) -> int:
        return math.ceil(self.partitions / max(1, workers))

    async def renew(self) -> list[int]:
        """Renew every lease we hold; returns the partitions lost (taken over, or not renewable in time)."""
        lost = []
        for p, revision in list(self.owned.items()):
            try:
                self.owned[p] = await self.kv.update(f"lease.{p}", self.worker_id.encode(), last=revision)
                self._renewed_at[p] = time.monotonic()
            except KeyWrongLastSequenceError:
                log.warning("lease of partition %d lost (expired or taken over)", p)
                lost.append(p)
            except Exception as exc:  # NATS away: keep it while the lease may still be ours
                if time.monotonic() - self._renewed_at.get(p, 0.0) > self.lease_s * 0.8:
                    log.warning("lease of partition %d not renewable in time (%s): giving it up", p, exc)
                    lost.append(p)
        for p in lost:
            self.owned.pop(p, None)
        return lost

    async def acquire(self, p: int) -> bool:
        try:
            self.owned[p] = await self.kv.create(f"lease.{p}", self.worker_id.encode())
        except KeyWrongLastSequenceError:
            return False
        self._renewed_at[p] = time.monotonic()
        return True

    async def release(self, p: int) -> None:
        revision = self.owned.pop(p, None)
        if revision is not None:
            await never_raises(f"releasing partition {p}", self.kv.delete(f"lease.{p}", last=revision))

    async def retire(self) -> None:
        """This worker is leaving: its ``worker.`` key goes now, not at the lease's expiry."""
        await never_raises("retiring", self.kv.delete(f"worker.{self.worker_id}"))
