"""The device snapshot: used only when it is of the source's revision, and a damaged one is ignored with a
warning and rebuilt, never a crash."""

from __future__ import annotations

import json
import logging
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest

from cloud_ingest import DeviceFile, IngestError, write_device_file
from cloud_ingest.device_snapshot import load_snapshot, save_snapshot, snapshot_revision
from cloud_ingest.registry_file import file_revision
from tests.support.reference_devices import MEDIANS, MIXED, DictDevices, same_answers
from zhijian_cli.ingest_devices import file_devices


@pytest.fixture
def devices_file(tmp_path: Path) -> Path:
    path = tmp_path / "devices.json"
    write_device_file(path, MIXED, MEDIANS)
    return path


def never_read(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(path: object) -> None:
        raise AssertionError("the devices file was read: the snapshot was not used")

    monkeypatch.setattr(DeviceFile, "load", fail)


def test_a_snapshot_of_the_current_file_is_used(
    devices_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    snap = tmp_path / "state" / "devices_snapshot.npz"
    same_answers(file_devices(devices_file, snap), DictDevices(MIXED, MEDIANS))
    assert snapshot_revision(snap) == file_revision(devices_file)
    assert snap.stat().st_mode & 0o077 == 0, "it holds every key: its owner's only"
    never_read(monkeypatch)
    same_answers(file_devices(devices_file, snap), DictDevices(MIXED, MEDIANS))


def test_a_snapshot_of_an_older_revision_is_not_used(devices_file: Path, tmp_path: Path) -> None:
    snap = tmp_path / "devices_snapshot.npz"
    assert not file_devices(devices_file, snap).is_revoked("scale-0003")
    changed = {**MIXED, "scale-0003": {**MIXED["scale-0003"], "revoked": True}}
    write_device_file(devices_file, changed, MEDIANS)
    assert file_devices(devices_file, snap).is_revoked("scale-0003")
    assert snapshot_revision(snap) == file_revision(devices_file), "rewritten for the new revision"
    table = DeviceFile(MIXED, MEDIANS)
    save_snapshot(snap, table, "file:other")
    assert load_snapshot(snap, "file:mine") is None


def damage(snap: Path, how: str) -> None:
    data = snap.read_bytes()
    if how == "truncated":
        snap.write_bytes(data[: len(data) // 2])
    elif how == "flipped":  # a byte inside a member: its CRC no longer matches
        i = data.index(b"scale-0003")
        snap.write_bytes(data[:i] + b"X" + data[i + 1 :])
    elif how == "garbage":
        snap.write_bytes(b"not a zip at all")
    elif how == "empty":
        snap.write_bytes(b"")
    elif how == "meta":  # a zip, but not of ours
        with zipfile.ZipFile(snap, "w") as z:
            z.writestr("meta.npy", b"\x93NUMPY broken")


@pytest.mark.parametrize("how", ["truncated", "flipped", "garbage", "empty", "meta"])
def test_a_damaged_snapshot_is_ignored_with_a_warning_and_rebuilt(
    devices_file: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture, how: str
) -> None:
    snap = tmp_path / "devices_snapshot.npz"
    file_devices(devices_file, snap)
    damage(snap, how)
    with caplog.at_level(logging.WARNING):
        table = file_devices(devices_file, snap)
    same_answers(table, DictDevices(MIXED, MEDIANS))
    assert "device snapshot unreadable" in caplog.text
    assert load_snapshot(snap, file_revision(devices_file)) is not None, "rebuilt"


def test_a_snapshot_whose_columns_disagree_is_ignored(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    snap = tmp_path / "s.npz"
    table = DeviceFile(MIXED, MEDIANS)
    save_snapshot(snap, table, "r1")
    with np.load(snap) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["c_revoked"] = arrays["c_revoked"][:-1]
    np.savez(snap, **arrays)
    assert load_snapshot(snap, "r1") is None and "different lengths" in caplog.text
    arrays["ids"] = arrays["ids"][::-1]
    arrays["c_revoked"] = np.r_[arrays["c_revoked"], False]
    np.savez(snap, **arrays)
    assert load_snapshot(snap, "r1") is None and "not sorted" in caplog.text


def test_a_snapshot_of_another_format_is_rebuilt(tmp_path: Path) -> None:
    snap = tmp_path / "s.npz"
    save_snapshot(snap, DeviceFile(MIXED), "r1")
    with np.load(snap) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["meta"] = np.array(json.dumps({**json.loads(str(arrays["meta"])), "format": 0}))
    np.savez(snap, **arrays)
    assert load_snapshot(snap, "r1") is None and snapshot_revision(snap) is None


def test_no_snapshot_or_a_failed_write_only_costs_time(
    devices_file: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    assert load_snapshot(tmp_path / "none.npz", "r") is None and snapshot_revision(tmp_path / "none.npz") is None
    blocked = tmp_path / "file"
    blocked.write_text("")
    same_answers(file_devices(devices_file, blocked / "s.npz"), DictDevices(MIXED, MEDIANS))
    assert "device snapshot not written" in caplog.text
    table = DeviceFile(MIXED)
    table.release_columns()
    with pytest.raises(ValueError, match="released"):
        save_snapshot(tmp_path / "s.npz", table, "r")
    with pytest.raises(IngestError, match="not a usable devices file"):
        file_devices(tmp_path / "missing.json", tmp_path / "s.npz")


def test_a_change_in_the_middle_with_its_time_set_back_is_a_new_revision(tmp_path: Path) -> None:
    """The revision reads only the file's ends: a same-size write in between, its modification time set
    back, is still told by the change time."""
    path = tmp_path / "devices.json"
    path.write_text(json.dumps({"devices": MIXED, "note": "x" * (3 << 20)}))
    before, st = file_revision(path), path.stat()
    with path.open("r+b") as f:
        f.seek(st.st_size // 2)
        f.write(b"y")
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert path.stat().st_mtime_ns == st.st_mtime_ns and path.stat().st_size == st.st_size
    assert file_revision(path) != before
