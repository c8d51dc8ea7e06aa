"""What a technician meets in the field, typed as they type it on a local registry: a failed verification
(exit status 3, FAILED in the list, no due date), a verification of one load (a warning), `registry
init` run twice (no second admin token), a device at the wrong kind of place, errors in plain words and
printed whole (brackets included), "did you mean", and `zhijian --version` from the installed command."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.cli_helpers import cli, seed_market

VERIFY = (
    "device verify scale-0001 --certificate {cert} --body 'SZ Metrology' --seal S-1 --technician Wang "
    "--coefficient 41943.04 --calibration-events 1 --configuration-events 1 {readings}"
)
# zj-pcs-30: class III, e = 5 g, Max 30 kg; at verification ±2.5 g to 2.5 kg, ±5 g to 10 kg, ±7.5 g to 30 kg
FULL_RANGE = "--reading 100=100 --reading 2500=2502.5 --reading 5000=5000 --reading 10000=10005 --reading 30000=29995"


@pytest.fixture
def registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ZHIJIAN_REGISTRY_URL", f"sqlite:///{tmp_path / 'registry.sqlite'}")
    monkeypatch.setenv("ZHIJIAN_KEY_SECRET_FILE", str(tmp_path / "registry.key"))
    monkeypatch.delenv("ZHIJIAN_API_URL", raising=False)
    code, out = cli("registry init --json")
    assert code == 0, out
    seed_market()
    code, out = cli("device register scale-0001 --profile zj-pcs-30 --serial S1 --market m1 --stall A-1")
    assert code == 0, out
    return tmp_path


def _listed() -> dict[str, str]:
    code, out = cli("device list")
    assert code == 0, out
    row = next(line for line in out.splitlines() if "scale-0001" in line)
    cells = [c.strip() for c in row.strip("│ ").split("│")]
    return dict(zip(("device", "kind", "profile", "at", "key", "verified", "due", "state"), cells, strict=True))


def test_a_failed_verification_exits_non_zero_lists_as_failed_and_sets_no_due_date(registry: Path) -> None:
    failing = FULL_RANGE.replace("10000=10005", "10000=10010")  # +10 g at 10 kg: MPE ±5 g
    code, out = cli(VERIFY.format(cert="C-1", readings=failing))
    assert code == 3, out
    assert "OUT" in out and "FAILED" in out and "no due date" in out and "next due" not in out
    assert _listed()["verified"] == "FAILED" and _listed()["due"] == ""
    code, out = cli("device show scale-0001 --json")
    last = json.loads(out)["last_verification"]
    assert last["passed"] is False and last["due_on"] is None
    code, out = cli("device list --due-within 0 --json")  # a failed scale is on the list of scales to visit
    assert [d["id"] for d in json.loads(out)] == ["scale-0001"]
    code, out = cli(VERIFY.format(cert="C-1", readings=failing + " --json --due 2027-06-01"))
    assert code == 3 and json.loads(out)["due_on"] is None  # a due date given is not taken for a failure

    code, out = cli(VERIFY.format(cert="C-2", readings=FULL_RANGE + " --date 2026-11-20"))
    assert code == 0, out
    assert "PASSED" in out and "next due 2027-11-20" in out and "warning" not in out
    assert _listed()["verified"] == "2026-11-20" and _listed()["due"] == "2027-11-20"


def test_a_verification_of_one_load_warns_that_it_needs_several_up_to_max(registry: Path) -> None:
    code, out = cli(VERIFY.format(cert="C-1", readings="--reading 1000=1000"))
    assert code == 0, out  # recorded and passed: what was weighed was right
    assert "1 load weighed: a verification needs several (at least 5) from Min up to Max" in out
    assert "no load near Max (30000 g); the heaviest was 1000 g" in out
    code, out = cli(VERIFY.format(cert="C-2", readings="--reading 1000=1000 --json"))
    assert len(json.loads(out)["warnings"]) == 4  # the count, Max, and the two MPE bands above 2.5 kg


def test_registry_init_twice_mints_no_second_admin_token(registry: Path) -> None:
    code, out = cli("registry init")
    assert code == 0, out
    assert "initialised already" in out and "zjt_" not in out and "no new admin token" in out
    code, out = cli("registry init --json")
    doc = json.loads(out)
    assert code == 0 and doc["already_initialised"] is True and doc["admin_token"] is None
    code, out = cli("registry token list --json")
    assert [t["role"] for t in json.loads(out)] == ["admin"]
    code, out = cli("registry init --new-admin-token --admin-name 'second admin' --json")
    assert code == 0 and json.loads(out)["admin_token"].startswith("zjt_")
    code, out = cli("registry token list --json")
    assert sorted(t["name"] for t in json.loads(out)) == ["first admin", "second admin"]


def test_a_device_at_the_wrong_kind_of_place_is_refused(registry: Path) -> None:
    assert cli("registry add base gm-veg-01 --name Veg --district futian")[0] == 0
    code, out = cli("device register soil-0001 --profile soil-rs485 --serial G1 --market m1 --stall A-1")
    assert code == 1
    assert "a sensor device (soil-rs485) cannot be at a market stall: it belongs at a planting base (--base)" in out
    code, out = cli("device register scale-0002 --profile zj-pcs-30 --serial S2 --base gm-veg-01")
    assert code == 1 and "a scale device (zj-pcs-30) cannot be at a planting base" in out
    code, out = cli("device update scale-0001 --base gm-veg-01")  # a move is checked too
    assert code == 1 and "cannot be at a planting base" in out
    code, out = cli("device register soil-0001 --profile soil-rs485 --serial G1 --base gm-veg-01")
    assert code == 0, out


def test_errors_are_plain_words_printed_whole_with_suggestions(registry: Path) -> None:
    code, out = cli("device register Scale_1 --profile zj-pcs-30 --serial S --market m1 --stall A-1")
    assert code == 1
    assert "a device id is 3-64 lower-case letters, digits and '-'" in out and "not 'Scale_1'" in out
    assert "String should match pattern" not in out
    code, out = cli("device show 'scale-[0001]'")  # refused before any call; brackets shown, not taken for markup
    assert code == 2 and "'scale-[0001]': a device id is 3-64" in " ".join(out.replace("│", " ").split()), out
    code, out = cli("device revoke 'x/../scale-0001' --reason 'seal broken' --yes")  # never another device's path
    assert code == 2 and "'x/../scale-0001': a device id is" in " ".join(out.replace("│", " ").split()), out
    code, out = cli("device register scale-0002 --profile 'zj-pcs-[30]' --serial S --market m1 --stall A-1")
    assert code == 1 and "profile 'zj-pcs-[30]' is not a shipped profile; did you mean 'zj-pcs-30'?" in out, out
    code, out = cli("device show scale-0010")
    assert code == 1 and "device 'scale-0010' not found; did you mean 'scale-0001'?" in out


def test_version_from_the_installed_command() -> None:
    zhijian = Path(sys.executable).with_name("zhijian")
    done = subprocess.run([zhijian, "--version"], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0 and done.stdout.startswith("zhijian 0."), done.stdout + done.stderr


def test_a_verification_without_the_scales_readings_says_which_options_give_them(registry: Path) -> None:
    bare = VERIFY.replace("--coefficient 41943.04 --calibration-events 1 --configuration-events 1 ", "")
    code, out = cli(bare.format(cert="C-9", readings=FULL_RANGE))
    text = " ".join(out.split())
    assert code == 1 and "give --from-scale PORT to read them, or --coefficient, --calibration-events" in text, out
    assert "Field required" not in out


def test_ids_that_would_name_another_resource_never_reach_a_url_path(registry: Path) -> None:
    for command in (
        "registry change-vendor --market 'zz/../m1' --code A-1 --vendor EVIL --licence 91350100M000100Y43",
        "registry change-vendor --market m1 --code 'zz/../A-1' --vendor EVIL --licence 91350100M000100Y43",
        "registry token revoke 'zz/../0ae174fe4f72'",
    ):
        code, out = cli(command)
        assert code == 1 and "which no registry id has" in " ".join(out.split()), (command, out)
