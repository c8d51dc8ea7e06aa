"""A partition's checkpoint: its whole state, and the last stream sequence that state includes.

A partition's state is *the files in its state directory* (whatever files its pipeline keeps: sequence
book, dead letters, spool, alert book, …) plus the anti-cheat engine's ``save()`` bytes. A snapshot is a
gzip'ed tar of both, taken between batches (no transaction open), so it is consistent; SQLite's ``-shm``
files are left out (rebuilt on open), ``-wal`` files are kept (they hold committed pages).

Checkpoints live in NATS, not on the worker's disk, so a worker's disk may die with the worker: the
snapshot is an object of the checkpoint object store named ``p<partition>-<sequence>``, and the key
``p<partition>`` of the checkpoint key-value bucket points at it with the sequence. That key is written
with a revision check (compare-and-set): a worker that lost its lease and still runs (a zombie) cannot
replace the checkpoint of the partition's new owner; it gets :class:`LostCheckpoint` and stops.
Dead letters are evidence, so they are in the snapshot: they move with the partition.
"""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from dataclasses import dataclass
from pathlib import Path

from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, ObjectStoreConfig, StorageType
from nats.js.errors import BucketNotFoundError, KeyNotFoundError, KeyWrongLastSequenceError, NotFoundError
from nats.js.kv import KeyValue
from nats.js.object_store import ObjectStore

from .errors import IngestError
from .nats_stream import checkpoint_bucket, never_raises

ENGINE_MEMBER = "anti_cheat_engine.state"


class LostCheckpoint(IngestError):
    """Another worker wrote this partition's checkpoint since we read it: the partition is not ours."""


@dataclass(frozen=True, slots=True)
class Checkpoint:
    sequence: int  # the last stream sequence the state includes (0: none)
    blob: bytes | None  # the snapshot, None for a partition never checkpointed
    revision: int  # of the pointer key (0: no pointer yet), for the compare-and-set of the next save
    object_name: str = ""


def snapshot(state_dir: Path, engine_state: bytes) -> bytes:
    """The files of ``state_dir`` and the engine's state as one gzip'ed tar."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz", compresslevel=1) as tar:
        for path in sorted(state_dir.iterdir()):
            if path.is_file() and not path.name.endswith("-shm") and path.name != ENGINE_MEMBER:
                tar.add(path, arcname=path.name)
        info = tarfile.TarInfo(ENGINE_MEMBER)
        info.size = len(engine_state)
        tar.addfile(info, io.BytesIO(engine_state))
    return out.getvalue()


def restore(blob: bytes | None, state_dir: Path) -> bytes | None:
    """``state_dir`` emptied and filled from a snapshot; returns the engine's state (None: start afresh)."""
    if state_dir.exists():
        shutil.rmtree(state_dir)
    state_dir.mkdir(parents=True)
    if blob is None:
        return None
    engine: bytes | None = None
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tar:
        for member in tar.getmembers():
            if not member.isfile() or "/" in member.name or member.name.startswith("."):
                continue  # only plain files of ours, never a path outside the directory
            data = tar.extractfile(member)
            assert data is not None
            if member.name == ENGINE_MEMBER:
                engine = data.read()
            else:
                (state_dir / member.name).write_bytes(data.read())
    return engine


class CheckpointStore:
    """Checkpoints of every partition of one stream (asyncio: call on the NATS loop)."""

    def __init__(self, kv: KeyValue, objects: ObjectStore) -> None:
        self.kv, self.objects = kv, objects

    @classmethod
    async def open(cls, js: JetStreamContext, stream: str, *, replicas: int = 1) -> CheckpointStore:
        name = checkpoint_bucket(stream)
        try:
            kv = await js.key_value(name)
        except BucketNotFoundError:
            kv = await js.create_key_value(
                KeyValueConfig(bucket=name, history=1, storage=StorageType.FILE, replicas=replicas)
            )
        try:
            objects = await js.object_store(name)
        except (BucketNotFoundError, NotFoundError):
            objects = await js.create_object_store(name, ObjectStoreConfig(storage=StorageType.FILE, replicas=replicas))
        return cls(kv, objects)

    async def load(self, partition: int) -> Checkpoint:
        try:
            entry = await self.kv.get(f"p{partition}")
        except KeyNotFoundError:
            return Checkpoint(0, None, 0)
        doc = json.loads(entry.value or b"{}")
        blob = (await self.objects.get(doc["object"])).data
        return Checkpoint(int(doc["sequence"]), blob, entry.revision or 0, doc["object"])

    async def save(self, partition: int, sequence: int, blob: bytes, previous: Checkpoint) -> Checkpoint:
        """Store a new checkpoint if ``previous`` is still the current one; raises :class:`LostCheckpoint`."""
        name = f"p{partition}-{sequence}-{previous.revision + 1}"
        await self.objects.put(name, blob)
        value = json.dumps({"sequence": sequence, "object": name}).encode()
        try:
            if previous.revision:
                revision = await self.kv.update(f"p{partition}", value, last=previous.revision)
            else:
                revision = await self.kv.create(f"p{partition}", value)
        except KeyWrongLastSequenceError as exc:
            await never_raises("deleting an orphan checkpoint", self.objects.delete(name))
            raise LostCheckpoint(f"partition {partition}: another worker checkpointed it") from exc
        if previous.object_name:
            await never_raises("deleting an old checkpoint", self.objects.delete(previous.object_name))
        return Checkpoint(sequence, None, revision, name)
