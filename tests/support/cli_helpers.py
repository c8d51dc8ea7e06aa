"""Running `zhijian` commands in tests, written as a technician types them."""

from __future__ import annotations

import shlex

from typer.testing import CliRunner

from zhijian_cli.main import app

runner = CliRunner()

SEED_MARKET = (
    "registry {conn} add district futian --name Futian",
    "registry {conn} add market m1 --name M1 --district futian --operator Op",
    "registry {conn} add stall --market m1 --code A-1 --vendor V --licence 91350100M000100Y43",
)


def cli(command: str) -> tuple[int, str]:
    """Exit code and output of ``zhijian <command>``."""
    result = runner.invoke(app, shlex.split(command))
    return result.exit_code, result.output


def seed_market(conn: str = "") -> None:
    """A district, a market and a stall (A-1), locally or through ``conn`` (``--api … --token …``)."""
    for command in SEED_MARKET:
        code, out = cli(command.format(conn=conn))
        assert code == 0, out
