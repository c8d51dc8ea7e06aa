"""Session fixtures: a private Mosquitto, a private influxd and a private nats-server (JetStream) on free ports,
stopped after the run (never the NATS some machines run on 4222).

A missing binary fails the tests with the package to install (never a silent skip).

Hypothesis runs with no deadline and without its "too slow" and "too large" health checks: on a busy
2-core machine generating examples takes longer than Hypothesis expects, and that is no fault of the
code under test (a test's own ``@settings`` still sets its number of examples).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from cloud_ingest import InfluxClient
from zhijian_cli.servers import InfluxServer, MosquittoServer, NatsServer

settings.register_profile(
    "busy-machine", deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
settings.load_profile("busy-machine")


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MosquittoServer]:
    with MosquittoServer(tmp_path_factory.mktemp("mosquitto")) as server:
        yield server


@pytest.fixture(scope="session")
def influxd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InfluxServer]:
    with InfluxServer(tmp_path_factory.mktemp("influxd")) as server:
        yield server


@pytest.fixture(scope="session")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    with NatsServer(tmp_path_factory.mktemp("nats")) as server:
        yield server


_db_numbers = itertools.count(1)


@pytest.fixture
def influx(influxd: InfluxServer) -> Iterator[InfluxClient]:
    """A client on a fresh database of the session's influxd."""
    client = InfluxClient(influxd.url, f"test_{next(_db_numbers)}")
    client.create_database()
    yield client
    client.query(f'DROP DATABASE "{client.database}"', method="POST")
    client.close()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path


@pytest.fixture(autouse=True)
def _working_directory_is_temporary(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test runs in a temporary folder of its own (not its ``tmp_path``, which tests list): a state path
    left at its default, relative to the working directory, lands there and never in the checkout, in the
    test's process and in every process it starts."""
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))


@pytest.fixture(scope="session", autouse=True)
def _no_state_left_in_the_checkout() -> Iterator[None]:
    """Tests keep their state under tmp_path: an ingest started without a state path writes its state file
    into the working directory, where the next run would find it (a test once did, and another run's
    sequences and checkpoint leaked into it)."""
    root = Path(__file__).resolve().parent.parent
    state = ("*.sqlite", "*.sqlite-wal", "*.npz", "*.imported")

    def found() -> set[str]:
        return {p.name for pattern in state for p in root.glob(pattern)}

    before = found()
    yield
    left = found() - before
    assert not left, f"tests left state files in {root}: {sorted(left)}"
