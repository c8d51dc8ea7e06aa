"""A registry with two provisioned scales and the service accounts, a Mosquitto enforcing the password file
and ACL written from it, and `zhijian ingest run` on its own broker account.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from device_profiles.private_file import write_private
from device_registry.broker_files import hash_password, password_file_text
from device_registry.broker_sync import BrokerSync
from device_registry.schemas import DeviceIn, ProvisionIn
from tests.support.registry import KEY_SECRET, open_registry, seed_places
from zhijian_cli.servers import MosquittoServer

INGEST = "zhijian-ingest-1"  # the documented default client id, here also its account


VICTIM, ATTACKER = "scale-0001", "scale-0002"


@dataclass
class Fleet:
    """A registry with two provisioned scales, the service accounts, and the broker files written from them."""

    url: str
    sync: BrokerSync
    passwords: dict[str, str] = field(default_factory=dict)
    keys: dict[str, bytes] = field(default_factory=dict)


@pytest.fixture
def fleet(tmp_path: Path) -> Fleet:
    from device_registry.db import connect, upgrade

    url = f"sqlite:///{tmp_path / 'registry.sqlite'}"
    upgrade(url)
    engine = connect(url)
    reg = open_registry(engine)
    seed_places(reg)
    service = tmp_path / "service-accounts"
    passwords = {INGEST: "ingest-pw", "zhijian-admin": "admin-pw"}
    write_private(service, password_file_text({u: hash_password(p) for u, p in passwords.items()}))
    sync = BrokerSync(passwd_file=tmp_path / "passwd", acl_file=tmp_path / "acl", service_accounts=service)
    out = Fleet(url=url, sync=sync, passwords=passwords)
    for device, market in ((VICTIM, "futian-no1"), (ATTACKER, "nanshan-no2")):
        reg.register(DeviceIn(id=device, profile="zj-pcs-30", serial_no="S", market_id=market, stall_code="A-017"))
        bundle = reg.provision(device, ProvisionIn()).bundle
        assert bundle.broker.password is not None
        out.passwords[device] = bundle.broker.password
        out.keys[device] = bundle.key
    sync.apply(reg.db)
    reg.db.close()
    engine.dispose()
    return out


@pytest.fixture
def broker(fleet: Fleet, tmp_path: Path) -> Iterator[MosquittoServer]:
    with MosquittoServer(tmp_path / "broker", auth=(fleet.sync.passwd_file, fleet.sync.acl_file)) as server:
        yield server


def start_ingest(
    fleet: Fleet, port: int, influx_url: str, db: str, tmp_path: Path, extra: str = ""
) -> tuple[subprocess.Popen, Path]:
    """`zhijian ingest run` on its own account; no client id given, so the account names the session.
    ``extra``: more ``ZHIJIAN_*`` lines for its config."""
    key_file = tmp_path / "registry.key"
    key_file.write_text(KEY_SECRET.hex())
    config = tmp_path / "ingest.env"
    config.write_text(
        f"ZHIJIAN_MQTT_PORT={port}\nZHIJIAN_MQTT_USERNAME={INGEST}\nZHIJIAN_MQTT_PASSWORD={fleet.passwords[INGEST]}\n"
        f"ZHIJIAN_INFLUX_URL={influx_url}\nZHIJIAN_INFLUX_DB={db}\nZHIJIAN_REGISTRY_URL={fleet.url}\n"
        f"ZHIJIAN_KEY_SECRET_FILE={key_file}\nZHIJIAN_METRICS_PORT=0\nZHIJIAN_BATCH_MAX_MS=50\n"
        f"ZHIJIAN_SPOOL_PATH={tmp_path / 'spool.sqlite'}\nZHIJIAN_DEAD_LETTER_PATH={tmp_path / 'dead.sqlite'}\n"
        f"ZHIJIAN_STATE_PATH={tmp_path / 'ingest_state.sqlite'}\n" + extra
    )
    log_path = tmp_path / "ingest.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZHIJIAN_")}
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "zhijian_cli", "ingest", "run", "--config", str(config)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    return proc, log_path
