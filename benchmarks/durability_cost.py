"""What fsync costs where an acknowledgement waits for the disk, each write as the product does it and
without its fsyncs, side by side on the same disk.

- the ingest's anti-cheat checkpoint (``device_profiles.durable.replace_durably``: file and directory
  fsync'ed) for ``--scales`` scored scales, against a plain write + rename;
- the agent's status file, the same way;
- the ingest's spool: one append of a 5 000-line batch, SQLite WAL ``synchronous=FULL`` against OFF;
- the ingest's sequence book: one save after a batch touching ``--devices`` devices, in the journal
  modes SQLite offers (the book keeps SQLite's rollback journal with ``synchronous=EXTRA``).

Printed: the median time per operation (ms), and what it adds per record at the ingest's batch size.

    .venv/bin/python benchmarks/durability_cost.py [--scales 5700] [--devices 2000] [--repeat 30]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from machine import describe, median

from anti_cheat import Engine, ScaleFacts, Transactions
from cloud_ingest.sequences import SequenceBook
from cloud_ingest.spool import Spool
from device_profiles.durable import replace_durably
from device_profiles.metrology import ScaleFact

BATCH_RECORDS = 20_000  # a 2 000-message batch of 10 records, the ingest's default bound


def timed(step: Callable[[int], None], repeat: int) -> float:
    """Median milliseconds of ``step(i)``."""
    times = []
    for i in range(repeat):
        started = time.perf_counter()
        step(i)
        times.append((time.perf_counter() - started) * 1000)
    return median(times)


def plain_replace(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def checkpoint_bytes(scales: int) -> bytes:
    facts = ScaleFacts()
    rows = []
    for i in range(scales):
        device = f"scale-{i:05d}"
        facts.set(device, ScaleFact(coefficient=20_000.0, e_mg=5000))
        rows.append({"kind": "reweigh", "device": device, "seq": 1, "ts": 1, "net_mg": 1_001_000 + i})
        rows[-1]["reference_mg"] = 1_000_000
    engine = Engine(facts)
    engine.score(Transactions.from_rows(facts, rows))
    return engine.save()


def sequence_save(path: Path, devices: int, journal: str, synchronous: str) -> Callable[[int], None]:
    book = SequenceBook(path)
    book._db.execute(f"PRAGMA journal_mode={journal}")  # the alternatives, on the book's own tables
    book._db.execute(f"PRAGMA synchronous={synchronous}")
    names = [f"scale-{i:05d}" for i in range(devices)]

    def step(i: int) -> None:
        for d in names:
            book.observe(d, 10 * i + 1, 10, list(range(10)))
        book.save()

    return step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scales", type=int, default=5_700, help="scored scales in the checkpoint (Shenzhen: 5 700)")
    ap.add_argument("--devices", type=int, default=2_000, help="devices one batch touches (sequence book)")
    ap.add_argument("--repeat", type=int, default=30)
    args = ap.parse_args()
    print(describe())
    with tempfile.TemporaryDirectory(dir=".") as tmp:
        d = Path(tmp)
        state = checkpoint_bytes(args.scales)
        status = json.dumps({"outbox_depth": 0, "sources": {f"s{i}": {"up": True} for i in range(8)}}, indent=1)
        results = [
            (
                f"checkpoint ({len(state) / 1024:.0f} kB, {args.scales} scales)",
                timed(lambda _i: replace_durably(d / "state.npz", state), args.repeat),
                timed(lambda _i: plain_replace(d / "state-plain.npz", state), args.repeat),
            ),
            (
                f"agent status file ({len(status)} B)",
                timed(lambda _i: replace_durably(d / "status.json", status), args.repeat),
                timed(lambda _i: plain_replace(d / "status-plain.json", status.encode()), args.repeat),
            ),
        ]
        lines = [f"sale,device=scale-{i % 100:04d} net_mg={i}i {1_764_000_000_000_000_000 + i}" for i in range(5_000)]
        full = Spool(d / "spool.sqlite")
        off = Spool(d / "spool-off.sqlite")
        off._db.execute("PRAGMA synchronous=OFF")
        results.append(
            (
                "spool append (5 000 lines, WAL)",
                timed(lambda _i: full.append(lines), args.repeat),
                timed(lambda _i: off.append(lines), args.repeat),
            )
        )
        print(f"{'write':<42} {'fsync ms':>9} {'none ms':>9}  {'µs/record at a 20 000-record batch':>9}")
        for name, synced, unsynced in results:
            per = (synced - unsynced) * 1000 / BATCH_RECORDS
            print(f"{name:<42} {synced:>9.2f} {unsynced:>9.2f}  {per:>9.2f}")
        print(f"sequence book save ({args.devices} devices × 10 records):")
        for journal, synchronous in (("delete", "extra"), ("delete", "full"), ("wal", "full"), ("delete", "off")):
            path = d / f"seq-{journal}-{synchronous}.sqlite"
            ms = timed(sequence_save(path, args.devices, journal, synchronous), max(5, args.repeat // 3))
            print(f"  journal {journal:<7} synchronous {synchronous:<6} {ms:>9.2f} ms")


if __name__ == "__main__":
    main()
