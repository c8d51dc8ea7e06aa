"""Session fixtures: a private Mosquitto and a private influxd on free ports, stopped after the run.

A missing binary fails the tests with the package to install (never a silent skip).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from cloud_ingest import InfluxClient
from zhijian_cli.servers import InfluxServer, MosquittoServer


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MosquittoServer]:
    with MosquittoServer(tmp_path_factory.mktemp("mosquitto")) as server:
        yield server


@pytest.fixture(scope="session")
def influxd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InfluxServer]:
    with InfluxServer(tmp_path_factory.mktemp("influxd")) as server:
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
