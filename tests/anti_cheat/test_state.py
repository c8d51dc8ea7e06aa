"""Grouped scans against plain loops, and the engine state's growth, reset, save and restore."""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from anti_cheat import RULES, Engine, EngineState, ScaleFacts, Transactions
from anti_cheat.state import Groups, cusum
from device_profiles.metrology import ScaleFact


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
    b = engine.state.row(1)  # the state row of b-001, the only scale scored
    assert b == 0 and len(engine.state) == 1
    before = int(engine.state.reweigh_cusum[b])
    assert before > 0
    saved = engine.save()
    other = ScaleFacts()
    other.index_of("zz-999")  # the device indices differ on the other worker
    restored = Engine(other)
    restored.restore(saved)
    assert int(restored.state.reweigh_cusum[restored.state.row(other.index_of("b-001"))]) == before
    flags = engine.state.flag_counts[b].copy()
    engine.state.reset(np.array([1, 0, 99]))  # a new verification: the history starts again, the flags stay
    assert int(engine.state.reweigh_cusum[b]) == 0 and (engine.state.flag_counts[b] == flags).all()
    assert len(engine.state) == 1, "scales without a row (a-001, one never seen) have nothing to reset"
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


def _facts(*names: str) -> ScaleFacts:
    facts = ScaleFacts()
    for name in names:
        facts.set(name, ScaleFact(coefficient=20_000.0, e_mg=5000))
    return facts


def _old_save(devices: list[str], arrays: dict[str, np.ndarray], **extra: np.ndarray) -> bytes:
    """A save as an older version wrote it: no rule ids, possibly fewer rows or arrays than today."""
    buf = io.BytesIO()
    payload: dict[str, Any] = {"devices": np.array(json.dumps(devices)), **arrays, **extra}
    np.savez_compressed(buf, **payload)
    return buf.getvalue()


def test_a_worker_stopped_before_its_first_sale_restores_its_save() -> None:
    """The facts know scales (from the registry) that no batch has scored: the state has no rows yet."""
    engine = Engine(_facts("a-001", "b-001"))
    restarted = Engine(_facts("a-001", "b-001"))
    restarted.restore(engine.save())
    assert len(restarted.state) == 0
    rows = [{"kind": "reweigh", "device": "b-001", "seq": 1, "ts": 1, "net_mg": 1_100_000, "reference_mg": 1_000_000}]
    assert len(restarted.score(Transactions.from_rows(restarted.facts, rows))) > 0


def test_saves_of_older_versions_are_read() -> None:
    facts = _facts("a-001", "b-001", "c-001")
    # the old save of scales the facts knew but the state had no rows for: three devices, zero rows
    empty = {name: getattr(EngineState(), name) for name in EngineState._ARRAYS}
    state = EngineState.from_bytes(_old_save(["a-001", "b-001", "c-001"], empty), facts.index_of)
    assert len(state) >= 3 and not state.reweigh_cusum.any()
    # one scored scale, then one that had no row; no last_flag_ts (an array added later); no rule ids
    cusum = np.array([7], dtype=np.int64)
    flags = np.zeros((1, len(RULES)), dtype=np.int64)
    flags[0, 3] = 2
    arrays = {
        "reweigh_cusum": cusum,
        "coef_cusum_hi": cusum,
        "coef_cusum_lo": cusum,
        "digit_counts": np.ones((1, 10), dtype=np.int64),
        "digit_total": np.array([10], dtype=np.int64),
        "flag_counts": flags,
    }
    state = EngineState.from_bytes(_old_save(["b-001", "c-001"], arrays), facts.index_of)
    b, c = state.row(facts.index_of("b-001")), state.row(facts.index_of("c-001"))
    assert state.reweigh_cusum[b] == 7 and state.reweigh_cusum[c] == 0 and state.digit_total[b] == 10
    assert state.flag_counts[b, 3] == 2 and not state.last_flag_ts.any()
    # a save from before a rule was added: its columns cannot be told apart, so its counts are not moved
    arrays["flag_counts"] = np.full((1, len(RULES) - 1), 5, dtype=np.int64)
    state = EngineState.from_bytes(_old_save(["b-001"], arrays), facts.index_of)
    b = state.row(facts.index_of("b-001"))
    assert state.reweigh_cusum[b] == 7 and not state.flag_counts.any()
    # a save without flag counts at all
    del arrays["flag_counts"]
    state = EngineState.from_bytes(_old_save(["b-001"], arrays), facts.index_of)
    b = state.row(facts.index_of("b-001"))
    assert state.digit_total[b] == 10 and not state.flag_counts.any()


def test_flag_counts_follow_their_rule_ids_across_rule_changes() -> None:
    facts = _facts("a-001")
    names = [RULES[2].id, "a_rule_since_removed", RULES[0].id]
    one = EngineState()
    one.ensure(1)
    saved = {name: getattr(one, name)[:1] for name in EngineState._ARRAYS}
    saved["flag_counts"] = np.array([[4, 9, 1]], dtype=np.int64)
    saved["last_flag_ts"] = np.array([123], dtype=np.int64)
    data = _old_save(["a-001"], saved, rules=np.array(json.dumps(names)))
    state = EngineState.from_bytes(data, facts.index_of)
    a = state.row(facts.index_of("a-001"))
    assert state.flag_counts[a, 2] == 4 and state.flag_counts[a, 0] == 1 and state.flag_counts[a].sum() == 5
    # and today's saves carry today's rule ids, read back unchanged
    again = EngineState.from_bytes(state.to_bytes(facts.devices), facts.index_of)
    assert len(again) == len(state) == 1 and again.last_flag_ts[a] == 123
    assert (again.flag_counts[: len(again)] == state.flag_counts[: len(state)]).all()


def test_rows_are_given_to_the_scales_scored_only() -> None:
    """A million registered scales cost state only for those a batch scores."""
    state = EngineState()
    assert state.rows(np.zeros(0, dtype=np.intp)).tolist() == [] and len(state) == 0
    assert state.rows(np.array([999_999, 5, 999_999])).tolist() == [1, 0, 1], "new scales in index order"
    assert state.rows(np.array([7, 5])).tolist() == [2, 0] and len(state) == 3 and len(state.digit_total) == 16
    assert state.scale_of[: len(state)].tolist() == [5, 999_999, 7]
    state.reweigh_cusum[state.row(7)] = 3
    again = EngineState.from_bytes(state.to_bytes({5: "a", 7: "c", 999_999: "b"}), {"a": 0, "b": 1, "c": 2}.__getitem__)
    assert again.reweigh_cusum[again.row(2)] == 3 and len(again) == 3
