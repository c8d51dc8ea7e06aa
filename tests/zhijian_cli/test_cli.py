"""The command line: profile checks and a short demo run of the whole local stack."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from zhijian_cli.demo import DemoOptions, run_demo
from zhijian_cli.main import app

runner = CliRunner()


def test_profiles_list_and_check(tmp_path: Path) -> None:
    result = runner.invoke(app, ["profiles", "list"])
    assert result.exit_code == 0 and "zj-pcs-30" in result.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("id: x1\nkind: scale\n")
    result = runner.invoke(app, ["profiles", "check", str(bad)])
    assert result.exit_code == 1
    assert "bad.yaml" in result.output and "vendor" in result.output


def test_help_explains() -> None:
    result = runner.invoke(app, ["demo", "--help"])
    assert result.exit_code == 0 and "--duration" in result.output and "cheating" in result.output


@pytest.mark.integration
def test_demo_stores_sales_and_leaves_no_process(tmp_path: Path) -> None:
    data = tmp_path / "demo"
    console = Console(record=True, width=120)
    stored = run_demo(DemoOptions(duration_s=4, scales=8, cheaters=5, sales_per_s=20, data_dir=data), console)
    assert stored > 20
    text = console.export_text()
    assert "sales stored in InfluxDB" in text and "price_math" in text
    left = subprocess.run(["pgrep", "-f", str(data)], capture_output=True, text=True, check=False)
    assert left.stdout == "", f"processes left behind: {left.stdout}"
