"""docs/contract.md stays true to the code: every record type, field and reject reason is documented."""

from __future__ import annotations

import re
from pathlib import Path

from device_profiles import RECORD_TYPES, REJECT_REASONS, builtin_profiles

DOC = (Path(__file__).parents[2] / "docs" / "contract.md").read_text(encoding="utf-8")


def test_every_record_field_is_in_the_contract() -> None:
    for rtype in RECORD_TYPES.values():
        section = DOC.split(f"### `{rtype.name}`", 1)
        assert len(section) == 2, f"record type {rtype.name} is not documented"
        body = re.split(r"^##", section[1], maxsplit=1, flags=re.M)[0]
        documented = set(re.findall(r"^\| `(\w+)` \|", body, flags=re.M))
        assert documented == set(rtype.fields), f"{rtype.name}: doc {documented ^ set(rtype.fields)}"


def test_reasons_and_profiles_are_in_the_contract() -> None:
    for reason in REJECT_REASONS:
        assert f"`{reason}`" in DOC
    for profile_id in builtin_profiles():
        assert f"`{profile_id}`" in DOC
