"""The dense device table answers as the dict-based one did, read from a mapping or as a stream from a
devices file, and refuses bad facts naming the device and the field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from anti_cheat.fact_columns import FactError
from cloud_ingest import DeviceFile, IngestError, registry_file, write_device_file
from cloud_ingest.device_table import DeviceRows
from tests.support.reference_devices import FACT, MEDIANS, MIXED, DictDevices, same_answers


def test_the_dense_table_answers_as_the_dict_one() -> None:
    same_answers(DeviceFile(MIXED, MEDIANS), DictDevices(MIXED, MEDIANS))


@pytest.mark.parametrize("chunk", [7, 64, 1 << 20])
@pytest.mark.parametrize("indent", [None, 1])
def test_a_devices_file_is_read_as_a_stream(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int, indent: int | None
) -> None:
    monkeypatch.setattr(registry_file, "CHUNK", chunk)  # entries cut at every place a chunk can end
    path = tmp_path / "devices.json"
    doc = {"commodity_median": MEDIANS, "note": [1, {"x": 2.5}], "devices": MIXED}  # prices first, other keys
    path.write_text(json.dumps(doc, indent=indent, ensure_ascii=False), encoding="utf-8")
    same_answers(DeviceFile.load(path), DictDevices(MIXED, MEDIANS))


def test_the_written_format_reads_back(tmp_path: Path) -> None:
    write_device_file(tmp_path / "d.json", MIXED, MEDIANS)
    same_answers(DeviceFile.load(tmp_path / "d.json"), DictDevices(MIXED, MEDIANS))
    write_device_file(tmp_path / "e.json", {})
    assert len(DeviceFile.load(tmp_path / "e.json")) == 0


def test_a_device_given_twice_keeps_its_last_entry(tmp_path: Path) -> None:
    path = tmp_path / "d.json"
    path.write_text('{"devices": {"a": {"key": "01"}, "b": {"key": "02"}, "a": {"key": "0303"}}}')
    table = DeviceFile.load(path)
    assert table.key_for("a") == b"\3\3" and table.key_for("b") == b"\2" and len(table) == 2


@pytest.mark.parametrize(
    "text",
    [
        "",
        "[]",
        "{}",
        '{"commodity_median": {}}',
        '{"devices": {"a": {"key": "01"}',  # truncated
        '{"devices": {"a": {"key": "01"}}} trailing',
        '{"devices": {"a": 5}}',
        '{"devices": {"a": {"key": "zz"}}}',
        '{"devices": {"a": {"key": "01"}} "x": 1}',
    ],
)
def test_a_broken_devices_file_is_refused_saying_so(tmp_path: Path, text: str) -> None:
    path = tmp_path / "d.json"
    path.write_text(text)
    with pytest.raises(IngestError, match="not a usable devices file"):
        DeviceFile.load(path)


@pytest.mark.parametrize(
    ("fact", "match"),
    [
        ({**FACT, "e_mg": 0}, r"scale-9: scale\.e_mg: must be ≥ 1 \(got 0\)"),
        ({**FACT, "coefficient": -1.0}, r"scale-9: scale\.coefficient: must be > 0"),
        ({**FACT, "coefficient": float("inf")}, r"scale-9: scale\.coefficient: must be a finite number"),
        ({**FACT, "max_g": 10**8}, r"scale-9: scale\.max_g: must be ≤ 1e\+07"),
        ({**FACT, "approved_software_id": "x" * 65}, r"scale-9: scale\.approved_software_id: at most 64"),
        ({**FACT, "e_mg": "heavy"}, r"scale-9: scale\.e_mg: Input should be a valid integer.*'heavy'"),  # ScaleFact's
        ({**FACT, "colour": "red"}, r"scale-9: scale\.colour: Extra inputs are not permitted"),
        ({"e_mg": 5000}, r"scale-9: scale\.coefficient: Field required"),
        ({**FACT, "zero_counts": 2**70}, r"scale-9: scale\.zero_counts: Input should be less than or equal"),
    ],
)
def test_bad_facts_name_the_device_and_the_field(fact: dict[str, Any], match: str) -> None:
    with pytest.raises(FactError, match=match):
        DeviceFile({"scale-0001": {"scale": FACT}, "scale-9": {"key": "01", "scale": fact}})


def test_facts_the_model_coerces_are_taken_as_it_takes_them() -> None:
    odd = {**FACT, "e_mg": "5000", "calibration_events": 3.0}
    dense, ref = DeviceFile({"s": {"scale": odd}}), DictDevices({"s": {"scale": odd}})
    assert dense.facts.current("s") == ref.facts.current("s")


def test_without_facts_the_columns_stay_for_a_reload() -> None:
    table = DeviceFile(MIXED, with_facts=False)
    assert len(table.facts) == 0 and table.fact_columns is not None and table.fact_columns.has.sum() == 4
    table.release_columns()
    assert table.fact_columns is None


def test_a_device_id_with_a_nul_is_refused() -> None:
    with pytest.raises(ValueError, match="NUL"):
        DeviceRows().add("a\0", {})


def test_devices_the_facts_learn_later_are_not_devices_of_the_table() -> None:
    table = DeviceFile(MIXED)
    table.facts.index_of("scale-new")  # a scale first seen in a batch shares the index
    assert table.key_for("scale-new") is None and table.tags_for("scale-new") == {}
    assert not table.is_known("scale-new") and table.profile_for("scale-new") is None


def test_an_id_extending_a_known_one_gets_nothing_of_it() -> None:
    table = DeviceFile(MIXED)
    for other in ("scale-00031", "scale-000", "scale-0003\u00a0"):
        assert table.key_for(other) is None and not table.is_known(other) and table.tags_for(other) == {}
