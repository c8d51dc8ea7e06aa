"""Facts of a whole fleet as columns: the compact device index, the columnar constructor (the same facts
as one ScaleFact per device, the same bounds), and a reload that sets again only what changed."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from anti_cheat import ScaleFacts, device_index
from anti_cheat.device_index import DeviceIndex, check_ids, sorted_ids
from anti_cheat.fact_columns import FactError, FactRows
from device_profiles.metrology import ScaleFact

FACT: dict[str, Any] = {"coefficient": 20_000.0, "e_mg": 5000, "calibration_events": 3, "configuration_events": 7}
SCALES: dict[str, dict[str, Any] | None] = {
    "scale-b": FACT,
    "scale-a": {**FACT, "d_mg": 1000, "zero_counts": 120_000, "verified_ms": 1_700_000_000_000, "market": "m1"},
    "gw-1": None,
    "scale-c": {**FACT, "accuracy_class": "II", "approved_software_id": "PCS-1.2", "verification_due_ms": 5},
}


def via_model(fact: dict[str, Any]) -> ScaleFact | None:
    """What one ScaleFact in :meth:`ScaleFacts.set` makes of ``fact``."""
    return ScaleFacts.from_mapping({"x": fact}).current("x")


def columnar(scales: dict[str, dict[str, Any] | None], markets: dict[str, str] | None = None) -> ScaleFacts:
    index = DeviceIndex(sorted_ids(scales))
    rows = FactRows()
    for i in range(len(index)):
        name = index.name(i)
        fact = scales[name]
        if fact is None:
            rows.skip()
        else:
            rows.add(fact, (markets or {}).get(name))
    return ScaleFacts.from_columns(index, rows.build(), {"1001": 3100})


def test_columns_give_the_facts_one_scalefact_each_gives() -> None:
    facts = columnar(SCALES, {"scale-b": "m2"})
    ref = ScaleFacts.from_mapping(
        {d: {**f, "market": f.get("market", "m2" if d == "scale-b" else None)} for d, f in SCALES.items() if f},
        {"1001": 3100},
    )
    for device in [*SCALES, "nobody"]:
        assert facts.current(device) == ref.current(device), device
    assert facts.commodity_median == {"1001": 3100} and len(facts) == 4 and facts.versions == 4
    assert facts.current("gw-1") is None and facts.market_of(facts.index_of("scale-b")) == "m2"


def test_a_scale_loaded_from_columns_takes_a_new_verification_as_a_version() -> None:
    facts = columnar(SCALES)
    i = facts.index_of("scale-a")
    facts.set("scale-a", ScaleFact(**{**SCALES["scale-a"], "verified_ms": 1_800_000_000_000, "e_mg": 2000}))  # type: ignore[arg-type]
    assert facts.n_versions[i] == 2
    scale, ts = np.array([i, i]), np.array([1_750_000_000_000, 1_850_000_000_000])
    assert facts.take("e_mg", facts.in_force(scale, ts)).tolist() == [5000, 2000]
    facts.set("gw-1", ScaleFact(**FACT))  # a device of the columns without facts gets its first
    assert facts.current("gw-1") == via_model(FACT)
    assert facts.index_of("later") == 4 and facts.devices[4] == "later"


def test_a_reload_sets_again_only_the_devices_that_changed() -> None:
    facts = columnar(SCALES)
    fresh = {**SCALES, "scale-c": {**SCALES["scale-c"], "zero_counts": 7}, "scale-new": FACT}  # type: ignore[dict-item]
    index = DeviceIndex(sorted_ids(fresh))
    rows = FactRows()
    for i in range(len(index)):
        fact = fresh[index.name(i)]
        rows.skip() if fact is None else rows.add(fact)
    assert facts.update_from_columns(index.ids, rows.build()) == ["scale-c", "scale-new"]
    assert facts.current("scale-c") is not None and facts.current("scale-c").zero_counts == 7  # type: ignore[union-attr]
    assert facts.current("scale-new") == via_model(FACT)
    again = FactRows()
    for i in range(len(index)):
        fact = fresh[index.name(i)]
        again.skip() if fact is None else again.add(fact)
    assert facts.update_from_columns(index.ids, again.build()) == []


def test_rows_and_devices_must_agree() -> None:
    rows = FactRows()
    rows.add(FACT)
    rows.skip()
    assert len(rows) == 2 and rows.build().take(np.array([1, 0])).has.tolist() == [False, True]
    rows = FactRows()
    rows.add(FACT)
    with pytest.raises(ValueError, match="1 rows of facts for 2 devices"):
        ScaleFacts.from_columns(DeviceIndex(sorted_ids(["a", "b"])), rows.build())


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"e_mg": 0}, r"^s: scale\.e_mg: must be ≥ 1 \(got 0\)$"),
        ({"d_mg": 10**8}, r"^s: scale\.d_mg: must be ≤ 1e\+07"),
        ({"coefficient": 0.0}, r"^s: scale\.coefficient: must be > 0"),
        ({"coefficient": float("nan")}, r"^s: scale\.coefficient: must be a finite number"),
        ({"market": "m" * 65}, r"^s: scale\.market: at most 64 characters"),
        ({"verified_ms": -1}, r"^s: scale\.verified_ms: must be ≥ 0"),
    ],
)
def test_the_bounds_are_scalefacts(change: dict[str, Any], match: str) -> None:
    with pytest.raises(ValidationError):
        ScaleFact(**{**FACT, **change})  # the model refuses it too
    with pytest.raises(FactError, match=match):
        columnar({"s": {**FACT, **change}})


@pytest.mark.parametrize(
    "odd",
    [
        {"e_mg": "5000"},
        {"calibration_events": 3.0},
        {"coefficient": 20_000},
        {"coefficient": True},
        {"approved_software_id": None},
    ],
)
def test_an_entry_that_is_not_plain_goes_through_the_model(odd: dict[str, Any]) -> None:
    facts = columnar({"s": {**FACT, **odd}})
    assert facts.current("s") == via_model({**FACT, **odd})


@pytest.mark.parametrize(
    "bad",
    [
        {"coefficient": "heavy"},
        {"accuracy_class": "V"},
        {"market": 5},
        {"approved_software_id": 5},
        {"max_g": None},
        {"zero_counts": 2**64},
        {"colour": "red"},
    ],
)
def test_an_entry_the_model_refuses_raises_its_error(bad: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        FactRows().add({**FACT, **bad})


def test_the_index_finds_ids_of_its_block_and_later_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(device_index, "HOT_MAX", 2)
    index = DeviceIndex(sorted_ids(["b", "a", "秤"]))
    assert [index.get(n) for n in ("a", "b", "秤", "zz", "")] == [0, 1, 2, None, None]
    assert index.get("a") == 0, "from the bounded dict, refilled after it was cleared"
    assert index.add("new") == 3 and index.add("new") == 3 and index["new"] == 3 and len(index) == 4
    assert "new" in index and "nobody" not in index and 5 not in index
    with pytest.raises(KeyError):
        index["nobody"]
    asked = np.array([b"new", b"a", b"nobody", "秤".encode()], dtype=np.bytes_)
    assert index.positions(asked).tolist() == [3, 0, -1, 2]
    names = index.names
    assert list(names) == ["a", "b", "秤", "new"] and names[-1] == "new" and names[1:3] == ["b", "秤"]
    assert len(names) == 4
    with pytest.raises(IndexError):
        names[4]
    empty = DeviceIndex()
    assert empty.get("a") is None and empty.positions(asked).tolist() == [-1] * 4 and empty.add("a") == 0
    assert DeviceIndex(sorted_ids(["a"])).positions(np.array([b"new"])).tolist() == [-1]


def test_the_index_block_must_be_sorted_unique_and_without_nul() -> None:
    with pytest.raises(ValueError, match="not sorted and unique near 'a'"):
        check_ids(np.array([b"b", b"a"]))
    with pytest.raises(ValueError, match="not sorted and unique"):
        sorted_ids(["a", "a"])
    with pytest.raises(ValueError, match="NUL"):
        sorted_ids(["a\0"])
    assert len(check_ids(np.array([b"a"]))) == 1


def test_an_id_longer_or_shorter_than_the_block_is_not_another_device() -> None:
    """The block is as wide as its longest id: an id that is one of them cut or extended matches none."""
    index = DeviceIndex(sorted_ids(["scale-000001", "scale-000002"]))
    assert [index.get(n) for n in ("scale-0000012", "scale-00000", "scale-000002")] == [None, None, 1]
    asked = np.array([b"scale-0000012", b"scale-00000", b"scale-000002"])
    assert index.positions(asked).tolist() == [-1, -1, 1]
