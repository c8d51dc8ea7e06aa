"""The technician CLI on a local registry: bulk import with per-row errors, friendly refusals, --json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.cli_helpers import cli, runner, seed_market
from zhijian_cli.main import app


@pytest.fixture
def local_registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ZHIJIAN_REGISTRY_URL", f"sqlite:///{tmp_path / 'registry.sqlite'}")
    monkeypatch.setenv("ZHIJIAN_KEY_SECRET_FILE", str(tmp_path / "registry.key"))
    monkeypatch.delenv("ZHIJIAN_API_URL", raising=False)
    assert cli("registry init")[0] == 0
    seed_market()
    return tmp_path


def test_bulk_import_registers_good_rows_and_reports_bad_ones(local_registry: Path) -> None:
    csv_file = local_registry / "devices.csv"
    csv_file.write_text(
        "id,profile,serial_no,market_id,stall_code\n"
        "scale-0001,zj-pcs-30,S1,m1,A-1\n"
        "scale-0002,zj-pcs-30,S2,m1,A-9\n"  # no such stall
        "scale-0003,no-profile,S3,m1,A-1\n"
        "scale-0004,zj-fair-30,S4,m1,A-1\n",
        encoding="utf-8",
    )
    result = runner.invoke(app, ["device", "import", str(csv_file), "--json"])
    assert result.exit_code == 1
    summary = json.loads(result.output)
    assert summary["rows"] == 4 and summary["imported"] == 2
    assert [(f["line"], f["id"]) for f in summary["failed"]] == [(3, "scale-0002"), (4, "scale-0003")]
    assert "stall 'm1/A-9' not found" in summary["failed"][0]["error"]
    listed = json.loads(runner.invoke(app, ["device", "list", "--json"]).output)
    assert [d["id"] for d in listed] == ["scale-0001", "scale-0004"]
    shown = runner.invoke(app, ["device", "import", str(csv_file)])
    assert "4/4" in shown.output and "registered already" in shown.output  # the progress bar, then the errors


def test_refusals_are_one_line_without_a_traceback(local_registry: Path) -> None:
    result = runner.invoke(app, ["device", "show", "scale-9999"])
    assert result.exit_code == 1 and "device 'scale-9999' not found (HTTP 404)" in result.output
    assert "Traceback" not in result.output
    code, out = cli("registry add stall --market m1 --code B-1 --vendor V --licence 91350100M000100Y44")
    assert code == 1 and "mistyped" in out


def test_without_an_initialised_registry_the_cli_says_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ZHIJIAN_REGISTRY_URL", f"sqlite:///{tmp_path / 'none.sqlite'}")
    result = runner.invoke(app, ["device", "list"])
    assert result.exit_code == 1 and "zhijian registry init" in result.output


def test_a_device_moves_to_another_stall(local_registry: Path) -> None:
    assert cli("registry add stall --market m1 --code A-2 --vendor W --licence 91440300708461136T")[0] == 0
    assert cli("device register scale-0001 --profile zj-pcs-30 --serial S1 --market m1 --stall A-1")[0] == 0
    code, out = cli("device update scale-0001 --market m1 --stall A-2 --firmware 2.2.0 --json")
    assert code == 0, out
    doc = json.loads(out)
    assert doc["place"]["stall_code"] == "A-2" and doc["firmware_version"] == "2.2.0"
    code, out = cli("device update scale-0001 --stall A-3")
    assert code == 1 and "market_id and stall_code together" in out


def test_a_stall_changes_hands(local_registry: Path) -> None:
    code, out = cli("registry change-vendor --market m1 --code A-1 --vendor 'Zhao Liu' --licence 91440300708461136T")
    assert code == 0 and "Zhao Liu" in out
    code, out = cli("registry audit --json")
    change = next(e for e in json.loads(out) if e["action"] == "change_vendor")
    assert change["detail"]["before"]["vendor"] == "V" and change["detail"]["after"]["vendor"] == "Zhao Liu"
    code, out = cli("registry change-vendor --market m1 --code A-9 --vendor X --licence 91440300708461136T")
    assert code == 1 and "stall 'm1/A-9' not found" in out


def test_places_get_positions_where_they_are_created_and_later(local_registry: Path) -> None:
    code, out = cli("registry add base gm-1 --name Farm --district futian --lat 22.74 --lon 113.93 --json")
    assert code == 0 and (json.loads(out)["lat"], json.loads(out)["lon"]) == (22.74, 113.93)
    code, out = cli("registry add stall --market m1 --code A-2 --vendor W --licence 91350100M000100Y43 --lat 22.5")
    assert code == 1 and "lat and lon together" in out  # both or neither
    code, out = cli("registry position stall A-1 --market m1 --lat 22.5432 --lon 114.058")
    assert code == 0 and "stall A-1: 22.5432, 114.058 (WGS-84)" in out
    assert cli("registry position market m1 --lat 22.5431 --lon 114.0579")[0] == 0
    code, out = cli("registry position market m1")  # no coordinates: removed
    assert code == 0 and "market m1: no position" in out
    assert "--market" in cli("registry position stall A-1 --lat 1 --lon 2")[1]
    assert "district, market, stall or base" in cli("registry position vehicle v1 --lat 1 --lon 2")[1]
    code, out = cli("registry position district nowhere --lat 1 --lon 2")
    assert code == 1 and "not found" in out
