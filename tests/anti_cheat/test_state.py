"""Grouped scans against plain loops, and the engine state's growth, reset, save and restore."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from anti_cheat import Engine, EngineState, ScaleFact, ScaleFacts, Transactions
from anti_cheat.state import Groups, cusum


def naive_cusum(scales: list[int], ys: list[int], s0: dict[int, int]) -> list[int]:
    state = dict(s0)
    out = []
    for scale, y in zip(scales, ys, strict=True):
        state[scale] = max(0, state.get(scale, 0) + y)
        out.append(state[scale])
    return out


@given(
    st.lists(st.tuples(st.integers(0, 4), st.integers(-(10**6), 10**6)), max_size=60),
    st.lists(st.integers(0, 10**6), min_size=5, max_size=5),
)
def test_grouped_cusum_equals_the_recursion(rows: list[tuple[int, int]], start: list[int]) -> None:
    scales = np.array([r[0] for r in rows], dtype=np.int64)
    ys = np.array([r[1] for r in rows], dtype=np.int64)
    g = Groups.of(scales)
    s = cusum(g, ys[g.order], np.array(start, dtype=np.int64)[g.keys])
    got = np.empty(len(rows), dtype=np.int64)
    got[g.order] = s
    assert got.tolist() == naive_cusum(scales.tolist(), ys.tolist(), dict(enumerate(start)))


def test_cummin_falls_back_for_ranges_too_wide_to_shift() -> None:
    scales = np.array([0, 0, 1, 1, 2], dtype=np.int64)
    c = np.array([2**60, -(2**60), 2**60, 2**59, -(2**60)], dtype=np.int64)
    g = Groups.of(scales)
    assert g.cummin(c).tolist() == [2**60, -(2**60), 2**60, 2**59, -(2**60)]
    assert g.cummin(np.zeros(0, dtype=np.int64)).tolist() == []


def test_an_empty_batch_changes_nothing() -> None:
    facts = ScaleFacts()
    engine = Engine(facts)
    batch = Transactions.from_rows(facts, [])
    assert len(engine.score(batch)) == 0


def test_state_grows_resets_saves_and_restores_by_device_id() -> None:
    facts = ScaleFacts()
    for name in ("a-001", "b-001"):
        facts.set(name, ScaleFact(coefficient=20_000.0, e_mg=5000))
    engine = Engine(facts)
    rows = [
        {"kind": "reweigh", "device": "b-001", "seq": i, "ts": i, "net_mg": 1_100_000, "reference_mg": 1_000_000}
        for i in range(3)
    ]
    engine.score(Transactions.from_rows(facts, rows))
    before = int(engine.state.reweigh_cusum[1])
    assert before > 0
    saved = engine.save()
    other = ScaleFacts()
    other.index_of("zz-999")  # the device indices differ on the other worker
    restored = EngineState.from_bytes(saved, other.index_of)
    assert int(restored.reweigh_cusum[other.index_of("b-001")]) == before
    engine.state.reset(1)
    assert int(engine.state.reweigh_cusum[1]) == 0 and not engine.state.flag_counts[1].any()
    assert len(EngineState.from_bytes(EngineState().to_bytes([]), other.index_of)) == 0


def test_stateless_mode_runs_only_the_per_row_rules() -> None:
    facts = ScaleFacts()
    facts.set("a-001", ScaleFact(coefficient=20_000.0, e_mg=5000))
    rows = [
        {"kind": "reweigh", "device": "a-001", "seq": i, "ts": i, "net_mg": 1_100_000, "reference_mg": 1_000_000}
        for i in range(5)
    ]
    batch = Transactions.from_rows(facts, rows)
    rules = {f.rule for f in Engine(facts, stateful=False).score(batch).flags(batch, facts)}
    assert rules == {"reweigh_error"}
    assert "reweigh_cusum" in {f.rule for f in Engine(facts).score(batch).flags(batch, facts)}
