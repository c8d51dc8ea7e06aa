"""docs/contract.md stays true to the code: record tables, reject reasons and profiles."""

from __future__ import annotations

from pathlib import Path

from device_profiles import REJECT_REASONS, builtin_profiles
from device_profiles.docs import record_tables

DOC = (Path(__file__).parents[2] / "docs" / "contract.md").read_text(encoding="utf-8")


def test_record_tables_are_the_generated_ones() -> None:
    assert record_tables() in DOC, "docs/contract.md is stale: paste `python -m device_profiles.docs` into §3"


def test_reasons_and_profiles_are_in_the_contract() -> None:
    for reason in REJECT_REASONS:
        assert f"`{reason}`" in DOC
    for profile_id in builtin_profiles():
        assert f"`{profile_id}`" in DOC
