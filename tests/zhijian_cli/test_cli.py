"""The command line: profile checks and a short demo run of the whole local stack."""

from __future__ import annotations

import contextlib
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
    stored = run_demo(DemoOptions(duration_s=4, scales=8, cheaters=7, sales_per_s=20, data_dir=data), console)
    assert stored > 20
    text = console.export_text()
    assert "sales stored in InfluxDB" in text and "price_math" in text
    assert "Every sale made is stored" in text, text  # the price-scaling cheater's impossible weights too
    assert "over_max" in text
    assert "Planting base:" in text and "GPS fixes" in text
    # every device came through the registry, and the broker enforced its passwords and ACL
    assert "with passwords and ACL from the registry" in text
    import sqlite3

    with contextlib.closing(sqlite3.connect(data / "registry.sqlite")) as db:
        provisioned = db.execute("SELECT COUNT(DISTINCT device_id) FROM credentials").fetchone()[0]
        verified = db.execute("SELECT COUNT(*) FROM verifications WHERE passed").fetchone()[0]
    assert (provisioned, verified) == (8 + 3, 8 + 1)  # scales, fair, base, vehicle; scales and fair verified
    config = (data / "mosquitto" / "mosquitto.conf").read_text()
    assert "allow_anonymous false" in config and "password_file" in config and "acl_file" in config
    left = subprocess.run(["pgrep", "-f", str(data)], capture_output=True, text=True, check=False)
    assert left.stdout == "", f"processes left behind: {left.stdout}"


def test_a_missing_server_binary_names_its_package() -> None:
    from zhijian_cli.servers import MissingBinary, find_binary

    with pytest.raises(MissingBinary, match=r"apt-get install zhijian-nonexistent"):
        find_binary("zhijian-nonexistent-server", "zhijian-nonexistent")


@pytest.mark.integration
def test_servers_die_with_the_process_that_started_them(tmp_path: Path) -> None:
    import sys
    import time

    script = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from zhijian_cli.servers import MosquittoServer\n"
        f"s = MosquittoServer(Path({str(tmp_path)!r})).start()\n"
        "print(s.port, flush=True)\n"
        "time.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip().isdigit()
    assert subprocess.run(["pgrep", "-f", str(tmp_path)], capture_output=True, check=False).returncode == 0
    proc.kill()  # SIGKILL: no cleanup code runs in the parent
    proc.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if subprocess.run(["pgrep", "-f", str(tmp_path)], capture_output=True, check=False).returncode != 0:
            return
        time.sleep(0.1)
    raise AssertionError("mosquitto outlived the process that started it")


def test_ingest_settings_file_errors_are_clear(tmp_path: Path) -> None:
    missing = runner.invoke(app, ["ingest", "run", "--config", str(tmp_path / "nope.env")])
    assert missing.exit_code == 2 and "no such settings file" in " ".join(missing.output.split())
    bad = tmp_path / "ingest.env"
    bad.write_text("ZHIJIAN_PARTITION=3\nZHIJIAN_PARTITIONS=2\n")
    result = runner.invoke(app, ["ingest", "run", "--config", str(bad)])
    assert result.exit_code == 2 and "partition 3 must be below partitions (2)" in " ".join(result.output.split())


def test_the_cli_starts_without_loading_the_registry_stack() -> None:
    """`zhijian agent run` starts on every boot of a gateway, and the chaos test kills it within a second:
    FastAPI and SQLAlchemy (0.8 s to import here) load only for registry commands."""
    import subprocess
    import sys

    probe = "import sys, zhijian_cli.main; print(sorted(m for m in ('fastapi', 'sqlalchemy') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_agent_dead_letters_lists_what_could_not_be_attributed(tmp_path: Path) -> None:
    import secrets

    import yaml
    from typer.testing import CliRunner

    from edge_agent.outbox import Outbox
    from zhijian_cli.main import app

    state = tmp_path / "state"
    state.mkdir()
    box = Outbox(state / "outbox.sqlite")
    box.dead_letter("bad_line", b"[red]XTR Q 17[/]\r\n", at_ms=1)
    box.close()
    bundle = tmp_path / "b.yaml"
    bundle.write_text(
        yaml.safe_dump(
            {
                "device_id": "scale-0001",
                "key_hex": secrets.token_hex(32),
                "state_dir": str(state),
                "broker": {"host": "127.0.0.1"},
                "sources": [{"profile": "zj-pcs-30", "port": "/dev/null"}],
            }
        )
    )
    out = CliRunner().invoke(app, ["agent", "dead-letters", "-c", str(bundle)])
    assert out.exit_code == 0, out.output
    assert "bad_line" in out.output and "[red]XTR Q 17[/]" in out.output  # shown as sent, not as markup
