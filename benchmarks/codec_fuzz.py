"""Codec fuzz: hostile, random and mutated inputs through every codec, checked for surprises and for time.

Each input (from ``tests/support/fuzz_inputs.py``: a third random bytes, a third mutated valid
frames, a third hostile patterns such as long runs of token characters before a tab or a quote and
lines at the codec's limit) is drained through a fresh :class:`FrameBuffer` of the codec. Prints per
codec: inputs, bytes, unexpected exceptions (anything but a frame or our FrameError; goal 0), median
and max time per input, and the slowest input (repr, truncated) with its time per 100 bytes, re-timed
alone (median of 5) so that a scheduling hiccup on a busy machine is not taken for a slow input. Goal
(issue 10): ≤ 1 ms per 100 bytes. Then the MT-SICS whole-line pattern the codec used before, against
the tokeniser, on the hostile lines that made it backtrack.

Workers (``--jobs``) split each codec's inputs, each with its own seed derived from ``--seed``.

    .venv/bin/python benchmarks/codec_fuzz.py [--inputs 1000000] [--jobs N] [--codecs mtsics,nmea] [--seed 1]
"""

from __future__ import annotations

import argparse
import contextlib
import heapq
import os
import random
import re
import statistics
import sys
import time
from array import array
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the inputs live with the tests

from machine import describe

from device_profiles import FrameError
from device_profiles.codecs import mtsics
from device_profiles.codecs.frame_buffer import FrameBuffer
from tests.support.fuzz_inputs import Target, inputs, run, targets

KEEP_SLOWEST = 20
KEEP_FAILURES = 5


@dataclass
class Part:
    """What one worker saw of one codec."""

    inputs: int = 0
    size: int = 0
    frames: int = 0
    times_ns: array = field(default_factory=lambda: array("q"))  # type: ignore[type-arg]
    slowest: list[tuple[int, int, bytes]] = field(default_factory=list)  # heap of (ns, index, input)
    failures: list[tuple[str, bytes]] = field(default_factory=list)
    failure_count: int = 0
    errors: dict[str, int] = field(default_factory=dict)


def _target(name: str) -> Target:
    return next(t for t in targets() if t.name == name)


def work(name: str, seed: int, n: int) -> Part:
    target = _target(name)
    fb: FrameBuffer[object] = FrameBuffer(target.decode)
    part = Part()
    clock = time.perf_counter_ns
    for i, data in enumerate(inputs(target, random.Random(seed), n)):
        t0 = clock()
        frames, exc = run(fb, data)
        ns = clock() - t0
        part.times_ns.append(ns)
        part.inputs += 1
        part.size += len(data)
        part.frames += frames
        if exc is not None:
            part.failure_count += 1
            if len(part.failures) < KEEP_FAILURES:
                part.failures.append((f"{type(exc).__name__}: {exc}", data))
        if len(part.slowest) < KEEP_SLOWEST:
            heapq.heappush(part.slowest, (ns, i, data))
        elif ns > part.slowest[0][0]:
            heapq.heapreplace(part.slowest, (ns, i, data))
    part.errors = dict(fb.errors)
    return part


def retime(target: Target, data: bytes, repeats: int = 5) -> int:
    fb: FrameBuffer[object] = FrameBuffer(target.decode)
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter_ns()
        run(fb, data)
        samples.append(time.perf_counter_ns() - t0)
    return int(statistics.median(samples))


def per_100_bytes(ns: int, size: int) -> float:
    """Milliseconds per 100 bytes (an input shorter than 100 bytes is charged as 100)."""
    return ns / 1e6 * 100 / max(size, 100)


def report(name: str, parts: list[Part]) -> bool:
    target = _target(name)
    times = array("q")
    for p in parts:
        times.extend(p.times_ns)
    n, size = sum(p.inputs for p in parts), sum(p.size for p in parts)
    failures = sum(p.failure_count for p in parts)
    candidates = [(ns, data) for p in parts for ns, _, data in p.slowest]
    retimed = sorted(((retime(target, data), data) for _, data in candidates), key=lambda c: -c[0])
    slow_ns, slow = retimed[0]
    worst_rate = max(per_100_bytes(ns, len(data)) for ns, data in retimed)
    errors: dict[str, int] = {}
    for p in parts:
        for reason, count in p.errors.items():
            errors[reason] = errors.get(reason, 0) + count
    print(f"{name}: {n:,} inputs, {size / 1e6:,.1f} MB, {sum(p.frames for p in parts):,} frames")
    print(f"  unexpected exceptions: {failures} (goal 0)")
    for message, data in [f for p in parts for f in p.failures][:KEEP_FAILURES]:
        print(f"    {message[:100]}  input {data[:80]!r}")
    top = ", ".join(f"{r} {c:,}" for r, c in sorted(errors.items(), key=lambda e: -e[1])[:6])
    print(f"  rejections: {top}")
    print(
        f"  time per input: median {statistics.median(times) / 1e3:.1f} µs, max {max(times) / 1e3:,.0f} µs "
        f"(single shot)"
    )
    print(
        f"  slowest input, re-timed: {slow_ns / 1e3:,.0f} µs for {len(slow)} bytes = "
        f"{per_100_bytes(slow_ns, len(slow)):.3f} ms per 100 bytes (goal ≤ 1); "
        f"worst rate of the {len(retimed)} slowest {worst_rate:.3f} ms/100 B"
    )
    print(f"    {slow[:100]!r}{' …' if len(slow) > 100 else ''}")
    return failures == 0 and worst_rate <= 1.0


# The pattern MT-SICS lines were matched with before issue 10 (nested repetition: exponential backtracking).
OLD_LINE_RE = re.compile(r'[ ]*(?:(?:"[^"]*"|[^\s"]+)[ ]*)*')


def old_pattern(max_len: int) -> None:
    print("MT-SICS: the old whole-line pattern vs the tokeniser on 'S S ' + 'A' × k + TAB (a bad line)")
    for size in range(20, max_len + 1, 2):
        text = "S S " + "A" * (size - 5) + "\t"
        t0 = time.perf_counter()
        assert OLD_LINE_RE.fullmatch(text) is None
        old = time.perf_counter() - t0
        raw = text.encode() + b"\r\n"
        t0 = time.perf_counter_ns()
        for _ in range(1000):
            with contextlib.suppress(FrameError):
                mtsics.decode(raw)
        new = (time.perf_counter_ns() - t0) / 1000
        print(f"  {size} bytes: old {old:,.3f} s, new {new / 1e3:.1f} µs")
    raw = b"S S " + b"A" * (mtsics.MAX_LINE - 5) + b"\t\r\n"
    t0 = time.perf_counter_ns()
    with contextlib.suppress(FrameError):
        mtsics.decode(raw)
    print(f"  {mtsics.MAX_LINE} bytes (the line limit): new {(time.perf_counter_ns() - t0) / 1e3:.1f} µs")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--inputs", type=int, default=1_000_000, help="inputs per codec")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--codecs", default=",".join(t.name for t in targets()))
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--old-pattern-bytes", type=int, default=30, help="longest line for the old pattern")
    args = parser.parse_args()
    print(f"machine: {describe()}")
    print(f"{args.inputs:,} inputs per codec, {args.jobs} workers, seed {args.seed}")
    ok = True
    started = time.perf_counter()
    with ProcessPoolExecutor(args.jobs) as pool:
        for name in args.codecs.split(","):
            shares = [args.inputs // args.jobs + (i < args.inputs % args.jobs) for i in range(args.jobs)]
            seeds = [args.seed * 1000 + i for i in range(args.jobs)]
            parts = list(pool.map(work, [name] * args.jobs, seeds, shares))
            ok = report(name, parts) and ok
    print(f"fuzzing took {time.perf_counter() - started:,.0f} s")
    old_pattern(args.old_pattern_bytes)
    print("all codecs: 0 unexpected exceptions, ≤ 1 ms per 100 bytes" if ok else "GOAL MISSED")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
