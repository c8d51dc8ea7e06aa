"""docs/anti_cheat.md stays true to the code: every rule and every input column is documented."""

from __future__ import annotations

import re
from pathlib import Path

from anti_cheat import RULES
from anti_cheat.columns import INPUT_COLUMNS

DOC = (Path(__file__).parents[2] / "docs" / "anti_cheat.md").read_text(encoding="utf-8")


def test_every_rule_has_a_row_with_its_severity() -> None:
    for rule in RULES:
        assert re.search(rf"^\| `{rule.id}` \| {rule.severity} \|", DOC, re.M), rule.id


def test_every_input_column_is_documented() -> None:
    table = DOC.split("### Input columns", 1)[1]
    for column in INPUT_COLUMNS:
        assert f"`{column}`" in table, column
