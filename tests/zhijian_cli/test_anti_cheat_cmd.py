"""``zhijian anti-cheat score`` on JSONL, CSV and Parquet, with errors that name the file and line."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from anti_cheat.columns import INPUT_COLUMNS
from firmware_sim.labelled_market import generate
from zhijian_cli.main import app

runner = CliRunner()
FIRST_RESULT: dict[str, list] = {}
COLUMNS = list(INPUT_COLUMNS)


@pytest.fixture(scope="module")
def market():
    return generate(honest_scales=4, scales_per_method=1, sales_per_scale=60, seed=3)


def write(tmp_path: Path, market, fmt: str) -> Path:
    rows = [{k: r.get(k) for k in COLUMNS} for r in market.rows]
    path = tmp_path / f"tx.{fmt}"
    if fmt == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    elif fmt == "csv":
        with path.open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=COLUMNS)
            w.writeheader()
            w.writerows(rows)
    else:
        pq.write_table(pa.Table.from_pylist(rows), path)
    return path


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_score_formats_give_the_same_flags(tmp_path: Path, market, fmt: str) -> None:
    registry = tmp_path / "registry.json"
    registry.write_text(json.dumps(market.registry))
    out = tmp_path / "flags.jsonl"
    result = runner.invoke(
        app, ["anti-cheat", "score", str(write(tmp_path, market, fmt)), "--registry", str(registry), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    flags = [json.loads(line) for line in out.read_text().splitlines()]
    assert flags and all(f["reason_zh"] and f["reason_en"] for f in flags)
    devices = {f["device"] for f in flags}
    assert devices == {d for d, t in market.truth.items() if t != "honest"}
    assert "scales at risk" in result.output and "price_math" in result.output
    key = sorted((f["device"], f["seq"], f["rule"]) for f in flags)
    assert FIRST_RESULT.setdefault("flags", key) == key  # every format, the same flags


def test_bad_input_names_the_line(tmp_path: Path, market) -> None:
    registry = tmp_path / "registry.json"
    registry.write_text(json.dumps(market.registry))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"device": "honest-0000", "seq": 1, "net_mg": 5}\n{"device": "x", "net_mg": "heavy"}\n')
    result = runner.invoke(app, ["anti-cheat", "score", str(bad), "--registry", str(registry)])
    assert result.exit_code == 2 and "bad.jsonl:2" in result.output and "net_mg" in result.output
    result = runner.invoke(app, ["anti-cheat", "score", str(bad), "--registry", str(tmp_path / "none.json")])
    assert result.exit_code == 2 and "none.json" in result.output
