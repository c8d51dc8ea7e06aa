"""The demo pointed at an InfluxDB that already holds data (``--influx-url``): it writes into its own
database only, its summary counts only its own run, its output without a terminal is whole plain lines,
and ``--export`` writes what it stored so that ``zhijian anti-cheat score`` scores it."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from cloud_ingest import InfluxClient
from zhijian_cli.demo import DEMO_DB, DemoOptions, run_demo
from zhijian_cli.demo_view import logs_to_file
from zhijian_cli.main import app
from zhijian_cli.servers import InfluxServer

OLD_MS = 1_700_000_000_000  # a point of an earlier run, long before this one


def _count(influx: InfluxClient, query: str) -> int:
    rows = influx.rows(query)
    return int(rows[0]["count"]) if rows else 0


@pytest.mark.integration
def test_the_demo_keeps_to_its_own_database_and_exports_what_scores(influxd: InfluxServer, tmp_path: Path) -> None:
    production = InfluxClient(influxd.url, "zhijian")
    production.create_database()
    production.write(["sale,device=scale-0001 amount_fen=999i,seq=1i 1764000000000000000"])
    earlier = InfluxClient(influxd.url, DEMO_DB)
    earlier.query(f'DROP DATABASE "{DEMO_DB}"', method="POST")
    earlier.create_database()
    earlier.write([f"sale,device=scale-0001 amount_fen=5i,seq=1i {OLD_MS * 1_000_000}"])
    out = io.StringIO()
    console = Console(file=out, width=80, soft_wrap=True)  # as `zhijian` makes it, writing to a pipe or a log
    export = tmp_path / "export"
    try:
        opts = DemoOptions(
            duration_s=4,
            scales=6,
            cheaters=5,
            sales_per_s=20,
            data_dir=tmp_path / "demo",
            influx_url=influxd.url,
            field_devices=False,
            export_dir=export,
        )
        stored = run_demo(opts, console)
        text = out.getvalue()
        assert _count(production, 'SELECT count("amount_fen") FROM "sale"') == 1  # production untouched
        in_demo_db = _count(earlier, 'SELECT count("amount_fen") FROM "sale"')
        assert stored > 20 and in_demo_db == stored + 1  # the earlier run's point is there, and not counted
        assert f"{stored} sales stored in InfluxDB database {DEMO_DB}" in text
        assert "4 s of sales + up to 10 s drain" in text
        # plain lines, whole: the header row of the progress and of the summary
        assert "elapsed_s | sales | taken | outbox | messages | records | points | flagged | rejected\n" in text
        assert (
            "\nscale | stall · vendor | cheat (truth) | sales made | sales stored | turnover ¥ | flags by rule\n"
            in text
        )
        assert " | A-001 · Vendor 1 | " in text, text
        assert max(len(line) for line in text.splitlines()) > 80  # longer than the width, and not wrapped
        assert "Every sale made is stored" in text, text
    finally:
        production.query('DROP DATABASE "zhijian"', method="POST")
        production.close()
        earlier.close()

    transactions, registry = export / "transactions.jsonl", export / "registry.json"
    rows = [json.loads(line) for line in transactions.read_text(encoding="utf-8").splitlines()]
    sales = [r for r in rows if r.get("kind", "sale") == "sale"]
    assert len(sales) == stored and all(r["ts"] > OLD_MS for r in rows)
    assert {r["kind"] for r in rows if "kind" in r} >= {"reweigh"}  # the fair scale's re-weighs too
    assert len(json.loads(registry.read_text(encoding="utf-8"))["scales"]) == 6 + 1  # stalls and the fair scale
    flags = tmp_path / "flags.jsonl"
    result = CliRunner().invoke(
        app, ["anti-cheat", "score", str(transactions), "--registry", str(registry), "--out", str(flags)]
    )
    assert result.exit_code == 0, result.output
    flagged = {json.loads(line)["device"] for line in flags.read_text(encoding="utf-8").splitlines()}
    assert flagged and "not in the registry" not in result.output  # every exported scale has its facts


def test_warnings_during_the_run_go_to_the_log_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = io.StringIO()
    path = tmp_path / "demo.log"
    with logs_to_file(path, Console(file=out)):
        logging.getLogger("zhijian.test").warning("broker went away")
    assert "broker went away" in path.read_text(encoding="utf-8")
    assert "broker went away" not in capsys.readouterr().err
    assert f"1 warning was logged during the run: see {path}" in out.getvalue()
