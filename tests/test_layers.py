"""The layers of the code, kept by a test: which package may import which, and what the registry API loads.

The contract (device_profiles) is at the bottom and imports nothing of ours. The engine, the edge agent,
the simulators and the registry stand on it side by side; the ingest adds the engine; the dashboards read
the contract's schema; the ``zhijian`` command on top composes everything. Every import statement counts,
at module level or inside a function, under ``TYPE_CHECKING`` or not: a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CONTRACT = {"device_profiles"}
ALLOWED: dict[str, set[str]] = {
    "device_profiles": set(),
    "anti_cheat": CONTRACT,
    "edge_agent": CONTRACT,
    "firmware_sim": CONTRACT,
    "device_registry": CONTRACT,
    "cloud_ingest": CONTRACT | {"anti_cheat"},
    "dashboards": CONTRACT,
    "zhijian_cli": {
        "device_profiles",
        "anti_cheat",
        "edge_agent",
        "firmware_sim",
        "device_registry",
        "cloud_ingest",
        "dashboards",
    },
}
OURS = set(ALLOWED)


def imported_packages(source: str, filename: str) -> list[tuple[int, str]]:
    """``(line, top-level package)`` of every absolute import of ours in ``source`` (relative imports stay
    inside their own package)."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found += [(node.lineno, n.split(".")[0]) for n in names if n.split(".")[0] in OURS]
    return found


def violations(package: str) -> list[str]:
    out = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for line, target in imported_packages(path.read_text(encoding="utf-8"), str(path)):
            if target != package and target not in ALLOWED[package]:
                out.append(f"{path.relative_to(ROOT)}:{line}: {package} imports {target}")
    return out


def test_every_package_is_in_the_table() -> None:
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py")} - {"tests", "benchmarks"}
    assert packages == OURS, "a new package needs its place in the layers (ALLOWED)"


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_imports_point_down(package: str) -> None:
    assert violations(package) == []


def test_the_walker_sees_every_kind_of_import() -> None:
    source = """
from __future__ import annotations
import os, edge_agent.bundle_file
from typing import TYPE_CHECKING
from .sibling import x
if TYPE_CHECKING:
    from anti_cheat import Engine
def later():
    from cloud_ingest.worker import Worker
"""
    assert imported_packages(source, "probe.py") == [(3, "edge_agent"), (7, "anti_cheat"), (9, "cloud_ingest")]


_PROBE = """
import json, sys
import {module}
print(json.dumps(sorted({{name.split(".")[0] for name in sys.modules}})))
"""


def loaded_by(module: str) -> set[str]:
    """The top-level packages a fresh interpreter holds after importing ``module``."""
    done = subprocess.run(
        [sys.executable, "-c", _PROBE.format(module=module)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    loaded = set(json.loads(done.stdout))
    assert module.partition(".")[0] in loaded  # the probe did import it
    return loaded


DEVICE_STACK = {"paho", "serial", "pymodbus"}


def test_the_registry_api_loads_no_device_stack() -> None:
    """The registry process serves HTTP; MQTT, serial and Modbus clients are the agent's and the ingest's."""
    loaded = loaded_by("device_registry.api")
    assert "fastapi" in loaded
    assert loaded & (DEVICE_STACK | {"edge_agent", "anti_cheat", "cloud_ingest"}) == set()


def test_the_agent_package_loads_its_stack_only_when_used() -> None:
    """``import edge_agent`` (for its errors, say) does not start paho, pyserial and pymodbus."""
    assert loaded_by("edge_agent") & DEVICE_STACK == set()
    assert loaded_by("edge_agent.agent") >= {"paho", "serial"}  # the probe sees them when they load
