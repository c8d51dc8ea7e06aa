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
    bad.write_text('{"device": "honest-0000", "ts": 1, "net_mg": 5}\n{"device": "x", "ts": 2, "net_mg": "heavy"}\n')
    result = runner.invoke(app, ["anti-cheat", "score", str(bad), "--registry", str(registry)])
    assert result.exit_code == 2 and "bad.jsonl:2" in result.output and "net_mg" in result.output
    result = runner.invoke(app, ["anti-cheat", "score", str(bad), "--registry", str(tmp_path / "none.json")])
    assert result.exit_code == 2 and "none.json" in result.output
    for line, said in (('{"device": "x", "net_mg": 5}', "no ts"), ('{"device": "x", "ts": 1, "kind": "sell"}', "kind")):
        bad.write_text(line + "\n")
        result = runner.invoke(app, ["anti-cheat", "score", str(bad), "--registry", str(registry)])
        assert result.exit_code == 2 and "bad.jsonl:1" in result.output and said in result.output


def test_a_malformed_registry_is_refused_with_the_field_named(tmp_path: Path) -> None:
    tx = tmp_path / "tx.jsonl"
    tx.write_text('{"device": "s-1", "ts": 1, "net_mg": 5}\n')
    registry = tmp_path / "registry.json"
    for doc, field in (
        ({"scales": {"s-1": {"coefficient": 20000.0}}}, "scales.s-1.e_mg"),
        ({"scales": {"s-1": {"coefficient": "many", "e_mg": 5000}}}, "scales.s-1.coefficient"),
        ({"scales": {"s-1": {"coefficient": 20000.0, "e_mg": 5000, "colour": "red"}}}, "scales.s-1.colour"),
        ({"scales": [1, 2]}, "scales"),
        ([1, 2], "JSON object"),
    ):
        registry.write_text(json.dumps(doc))
        result = runner.invoke(app, ["anti-cheat", "score", str(tx), "--registry", str(registry)])
        assert result.exit_code == 2 and field in result.output.replace("\n", ""), (doc, result.output)


def test_absent_columns_are_not_zeros_and_unknown_scales_are_listed(tmp_path: Path) -> None:
    # one row with no counts, counters or stability: the rules that need them do not run (before, the
    # absent columns read as zeros and gave four false high-severity flags, one of them "broken seal")
    fact = {"coefficient": 20000.0, "e_mg": 5000, "zero_counts": 120000, "calibration_events": 3}
    registry = tmp_path / "registry.json"
    registry.write_text(json.dumps({"scales": {"s-1": fact}}))
    tx = tmp_path / "tx.jsonl"
    tx.write_text(
        '{"device": "s-1", "ts": 1764000000000, "net_mg": 500000, "unit_price_fen_per_kg": 3000, "amount_fen": 1500}\n'
        '{"device": "s-9", "ts": 1764000000001, "net_mg": 500000}\n'
    )
    out = tmp_path / "flags.jsonl"
    result = runner.invoke(app, ["anti-cheat", "score", str(tx), "--registry", str(registry), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_text() == ""
    text = result.output.replace("\n", " ")
    assert "rules that did not run" in text and "coefficient: needs" in text and "counters: needs" in text
    assert "1 transactions of 1 scales not in the registry" in text and "s-9 (1)" in text


def test_a_reverification_mid_file_is_judged_against_the_verification_in_force(tmp_path: Path) -> None:
    old = {
        "coefficient": 20000.0,
        "e_mg": 5000,
        "zero_counts": 120000,
        "calibration_events": 3,
        "configuration_events": 7,
    }
    new = {**old, "coefficient": 21000.0, "zero_counts": 118000, "calibration_events": 4}
    t0 = 1_764_000_000_000

    def sale(k: int, fact: dict) -> dict:
        return {
            "device": "s-1",
            "seq": k,
            "ts": t0 + k * 60_000,
            "net_mg": 1_000_000,
            "tare_mg": 0,
            "raw_counts": fact["zero_counts"] + round(fact["coefficient"]),
            "zero_counts": fact["zero_counts"],
            "calibration_events": fact["calibration_events"],
            "configuration_events": 7,
        }

    tx = tmp_path / "tx.jsonl"
    tx.write_text("".join(json.dumps(sale(k, old if k < 5 else new)) + "\n" for k in range(10)))
    registry = tmp_path / "registry.json"
    registry.write_text(json.dumps({"scales": {"s-1": old}}))
    args = ["anti-cheat", "score", str(tx), "--registry", str(registry)]
    alone = runner.invoke(app, [*args, "--out", str(tmp_path / "a.jsonl")])
    assert alone.exit_code == 0
    flagged = {json.loads(line)["seq"] for line in (tmp_path / "a.jsonl").read_text().splitlines()}
    assert flagged == set(range(5, 10)), "against the old verification only, the re-verified sales look tampered"
    assert "a re-verification this run was not given" not in alone.output  # 5 sales: no hint yet
    tx.write_text("".join(json.dumps(sale(k, old if k < 5 else new)) + "\n" for k in range(20)))
    hinted = runner.invoke(app, [*args, "--out", str(tmp_path / "a.jsonl")])
    assert "a re-verification this run was not given" in hinted.output.replace("\n", " ")
    history = tmp_path / "verifications.jsonl"
    history.write_text(json.dumps({"device": "s-1", "verified_ms": t0 + 5 * 60_000 - 1, **new}) + "\n")
    result = runner.invoke(app, [*args, "--verifications", str(history), "--out", str(tmp_path / "b.jsonl")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "b.jsonl").read_text() == ""


@pytest.mark.parametrize(
    ("line", "said"),
    [
        ('{"device": "s-1", "ts": 1, "net_mg": Infinity}', "not an integer"),
        ('{"device": "s-1", "ts": 1, "net_mg": 1e30}', "out of range"),
        ('{"device": "s-1", "ts": 1, "net_mg": 4611686018427387904}', "out of range"),
        ('{"device": "s-1", "ts": -5, "net_mg": 5}', "out of range"),
        ('{"device": "s-1", "ts": 1, "net_mg": 1000.7}', "not an integer"),
        ('{"device": "s-1", "ts": 1, "net_mg": true}', "not an integer"),
        ('["s-1", 1, 5]', "must be an object"),
        ('"s-1"', "must be an object"),
    ],
)
def test_hostile_rows_are_refused_with_the_line_not_a_traceback(tmp_path: Path, line: str, said: str) -> None:
    registry = tmp_path / "registry.json"
    registry.write_text(json.dumps({"scales": {"s-1": {"coefficient": 20000.0, "e_mg": 5000}}}))
    tx = tmp_path / "tx.jsonl"
    tx.write_text(line + "\n")
    result = runner.invoke(app, ["anti-cheat", "score", str(tx), "--registry", str(registry)])
    assert result.exit_code == 2 and "tx.jsonl:1" in result.output and said in result.output, result.output


def test_registry_values_beyond_their_range_and_partial_verifications_are_refused(tmp_path: Path) -> None:
    tx = tmp_path / "tx.jsonl"
    tx.write_text('{"device": "s-1", "ts": 1, "net_mg": 5}\n')
    registry = tmp_path / "registry.json"
    good = {"coefficient": 20000.0, "e_mg": 5000}
    for doc, field in (
        ({"scales": {"s-1": {**good, "e_mg": 99999999999999999999999}}}, "scales.s-1.e_mg"),
        ({"scales": {"s-1": {**good, "max_g": 9223372036854775807}}}, "scales.s-1.max_g"),
        # a verification names everything read at it: counters are not taken over from another one
        (
            {"scales": {"s-1": good}, "verifications": [{"device": "s-1", "verified_ms": 5, **good}]},
            "calibration_events",
        ),
        ({"devices": {"s-1": {"scale": {"coefficient": "x", "e_mg": 5000}}}}, "devices.s-1.scale: coefficient"),
        ({"devices": [1]}, "devices must be an object"),
    ):
        registry.write_text(json.dumps(doc))
        result = runner.invoke(app, ["anti-cheat", "score", str(tx), "--registry", str(registry)])
        assert result.exit_code == 2 and field in result.output.replace("\n", ""), (doc, result.output)


def test_a_csv_from_excel_with_a_byte_order_mark_and_extra_fields(tmp_path: Path) -> None:
    registry = tmp_path / "registry.json"
    registry.write_text(json.dumps({"scales": {"s-1": {"coefficient": 20000.0, "e_mg": 5000}}}))
    tx = tmp_path / "tx.csv"
    tx.write_bytes("\ufeffdevice,ts,net_mg\ns-1,1,5000\n".encode())
    result = runner.invoke(app, ["anti-cheat", "score", str(tx), "--registry", str(registry)])
    assert result.exit_code == 0, result.output
    tx.write_text("device,ts,net_mg\ns-1,1,5000,7\n")
    result = runner.invoke(app, ["anti-cheat", "score", str(tx), "--registry", str(registry)])
    assert result.exit_code == 2 and "more fields than the header" in result.output.replace("\n", "")


def test_the_shipped_example_flags_the_cheats_and_spares_the_honest_scale(tmp_path: Path) -> None:
    """examples/anti_cheat, as examples/README.md says it scores."""
    example = Path(__file__).parents[2] / "examples" / "anti_cheat"
    out = tmp_path / "flags.jsonl"
    result = runner.invoke(
        app,
        [
            "anti-cheat",
            "score",
            str(example / "transactions.jsonl"),
            "--registry",
            str(example / "registry.json"),
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    rules: dict[str, set[str]] = {}
    for line in out.read_text().splitlines():
        flag = json.loads(line)
        rules.setdefault(flag["device"], set()).add(flag["rule"])
    assert rules == {
        "scale-0002": {"coefficient", "coefficient_cusum", "reweigh_error"},
        "scale-0003": {"price_math", "stability"},
    }


@pytest.mark.parametrize("shape", ["registry", "devices"])
def test_score_flags_a_scale_selling_unverified_once_a_day(tmp_path: Path, shape: str) -> None:
    sale = {"device": "scale-9", "ts": 1_764_000_000_000, "net_mg": 500_000, "unit_price_fen_per_kg": 1000}
    # a sale an hour for 30 hours from local midnight (UTC+8): two market days
    rows = [{**sale, "seq": k, "ts": sale["ts"] + k * 3_600_000, "amount_fen": 500} for k in range(30)]
    tx = tmp_path / "tx.jsonl"
    tx.write_text("".join(json.dumps(r) + "\n" for r in rows))
    doc = (
        {"scales": {}, "unverified": {"scale-9": "none"}}
        if shape == "registry"
        else {"devices": {"scale-9": {"profile": "zj-pcs-30", "unverified": "none"}}}
    )
    registry = tmp_path / "registry.json"
    registry.write_text(json.dumps(doc))
    out = tmp_path / "flags.jsonl"
    result = runner.invoke(app, ["anti-cheat", "score", str(tx), "--registry", str(registry), "--out", str(out)])
    assert result.exit_code == 0, result.output
    flags = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(f["rule"], f["seq"]) for f in flags] == [("unverified_in_use", 0), ("unverified_in_use", 24)]
    assert flags[0]["reason_en"] == "selling with no verification on record" and flags[0]["sales"] == 24
