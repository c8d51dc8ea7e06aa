"""The demo's devices, provisioned the way a technician does it: through the registry.

Districts, the market and its stalls (vendors with valid business licences), the planting base and the
rapid-test vehicle are added; every device is registered, its scale verified (the facts the anti-cheat
engine needs come from these records) and provisioned; the broker's password file and ACL are written
from the registry, so the demo's Mosquitto runs with authentication and the ACL on. The ingest then reads
keys, tags and facts from the registry, and follows changes a technician makes while the demo runs.
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from device_profiles.private_file import write_private
from device_registry import BundleDefaults, Principal, Registry, Role
from device_registry.broker_files import INGEST_USER, hash_password, password_file_text
from device_registry.broker_sync import BrokerSync
from device_registry.credentials import new_key_secret
from device_registry.db import connect, sessions, upgrade
from device_registry.schemas import (
    BaseIn,
    DeviceIn,
    DistrictIn,
    MarketIn,
    ProvisionIn,
    ReadingIn,
    StallIn,
    VehicleIn,
    VerificationIn,
)
from device_registry.uscc import check_character
from firmware_sim import Market

from .demo_field import BASE_ID, VEHICLE_ID

MARKET, DISTRICT = "futian-no1", "futian"


def licence(n: int) -> str:
    """A well-formed unified social credit code for the n-th simulated vendor (个体工商户 in Futian)."""
    first17 = f"92440304L{n:08d}"
    return first17 + check_character(first17)


@dataclass
class DemoRegistry:
    """What the demo's broker, agents and ingest need from the registry."""

    url: str
    key_secret: bytes
    key_secret_file: Path
    passwd_file: Path
    acl_file: Path
    service_accounts: Path
    ingest_password: str
    credentials: dict[str, tuple[bytes, str]] = field(default_factory=dict)  # device → (key, MQTT password)

    def broker_sync(self, pid_file: Path | None = None) -> BrokerSync:
        return BrokerSync(
            passwd_file=self.passwd_file,
            acl_file=self.acl_file,
            service_accounts=self.service_accounts,
            pid_file=pid_file,
        )

    def technician_env(self, broker_port: int, pid_file: Path | None) -> dict[str, str]:
        """The settings a technician uses to provision more devices into the running demo."""
        env = {
            "ZHIJIAN_REGISTRY_URL": self.url,
            "ZHIJIAN_KEY_SECRET_FILE": str(self.key_secret_file),
            "ZHIJIAN_BUNDLE_BROKER_PORT": str(broker_port),
            "ZHIJIAN_BUNDLE_STATE_DIR": str(self.key_secret_file.parent / "agents" / "{device}"),
            "ZHIJIAN_BROKER_PASSWD_FILE": str(self.passwd_file),
            "ZHIJIAN_BROKER_ACL_FILE": str(self.acl_file),
            "ZHIJIAN_BROKER_SERVICE_ACCOUNTS": str(self.service_accounts),
        }
        if pid_file is not None:  # the demo's broker runs as this user: the registry may signal it
            env["ZHIJIAN_BROKER_PID_FILE"] = str(pid_file)
            # and asks it whether it applied each change (its one listener; docs/operations.md)
            env |= {"ZHIJIAN_BROKER_CHECK_HOST": "127.0.0.1", "ZHIJIAN_BROKER_CHECK_PORT": str(broker_port)}
        return env


def provision_demo(data_dir: Path, market: Market, *, broker_host: str, broker_port: int) -> DemoRegistry:
    """Create the demo's registry under ``data_dir`` and provision every simulated device in it."""
    data_dir = data_dir.resolve()
    url = f"sqlite:///{data_dir / 'registry.sqlite'}"
    upgrade(url)
    secret = new_key_secret()
    key_file = data_dir / "registry.key"
    write_private(key_file, secret.hex() + "\n")
    ingest_password = secrets.token_urlsafe(18)
    service = data_dir / "service-accounts"
    write_private(service, password_file_text({INGEST_USER: hash_password(ingest_password)}))
    out = DemoRegistry(
        url=url,
        key_secret=secret,
        key_secret_file=key_file,
        passwd_file=data_dir / "mosquitto.passwd",
        acl_file=data_dir / "mosquitto.acl",
        service_accounts=service,
        ingest_password=ingest_password,
    )
    engine = connect(url)
    bundles = BundleDefaults(key_secret=secret, broker_host=broker_host, broker_port=broker_port)
    with sessions(engine)() as db:
        reg = Registry(db, Principal("demo", Role.ADMIN), bundles)
        _places(reg, market)
        for n, stall in enumerate(market.stalls):
            code = f"A-{n + 1:03d}"
            reg.register(_scale(stall.device_id, "zj-pcs-30", code))
            facts = market.verification_facts(stall)
            reg.verify(stall.device_id, _verification(facts, 30_000))
        fair = market.fair.firmware.profile
        reg.register(_scale(market.fair.device_id, fair.id, "FAIR"))
        assert fair.metrology is not None  # the fair scale is verified too: re-weighs are judged by its own e and d
        reg.verify(market.fair.device_id, _verification(market.verification_facts(market.fair), fair.metrology.max_g))
        reg.register(DeviceIn(id=BASE_ID, profile="soil-rs485", serial_no="GW-0001", base_id="gm-veg-01"))
        reg.register(DeviceIn(id=VEHICLE_ID, profile="zj-rt-12", serial_no="RT-0001", vehicle_id="rt-van-01"))
        for device in [*(s.device_id for s in market.stalls), market.fair.device_id, BASE_ID, VEHICLE_ID]:
            issued = reg.provision(device, ProvisionIn())
            password = issued.bundle.broker.password
            assert password is not None  # the registry issues every bundle with the device's password
            out.credentials[device] = (issued.bundle.key, password)
        out.broker_sync().apply(db)
    engine.dispose()
    return out


#: WGS-84 positions (the registry keeps WGS-84; docs/registry.md says when a basemap needs GCJ-02): the
#: market at the first point of the rapid-test vehicle's loop (demo_field.FUTIAN_LOOP), its stalls in rows
#: of ten about 4 m apart, the base in Guangming
MARKET_AT = (22.5431, 114.0579)


def _places(reg: Registry, market: Market) -> None:
    reg.add_district(DistrictIn(id=DISTRICT, name="Futian 福田", lat=22.5233, lon=114.0550))
    reg.add_district(DistrictIn(id="guangming", name="Guangming 光明", lat=22.7486, lon=113.9361))
    lat, lon = MARKET_AT
    reg.add_market(
        MarketIn(
            id=MARKET, name="Futian No. 1 market", district_id=DISTRICT, operator="Futian Markets Co.", lat=lat, lon=lon
        )
    )
    for n in range(len(market.stalls)):
        at = {"lat": round(lat + (n // 10) * 0.00004, 6), "lon": round(lon + (n % 10) * 0.00004, 6)}
        code = f"A-{n + 1:03d}"
        reg.add_stall(StallIn(market_id=MARKET, code=code, vendor=f"Vendor {n + 1}", business_licence=licence(n), **at))
    reg.add_stall(
        StallIn(
            market_id=MARKET,
            code="FAIR",
            vendor="Market office (公平秤)",
            business_licence=licence(999),
            lat=lat - 0.00006,
            lon=lon,
        )
    )
    reg.add_base(
        BaseIn(
            id="gm-veg-01",
            name="Guangming vegetable base",
            district_id="guangming",
            crops=["leafy"],
            lat=22.7702,
            lon=113.9151,
        )
    )
    reg.add_vehicle(VehicleIn(id="rt-van-01", plate="粤B·K1234", district_id=DISTRICT))


def _scale(device_id: str, profile: str, stall_code: str) -> DeviceIn:
    return DeviceIn(
        id=device_id,
        profile=profile,
        serial_no=f"SN-{device_id}",
        approved_software_id="ZJ-PCS-FW 2.1.0 crc=5A3C",
        market_id=MARKET,
        stall_code=stall_code,
    )


def _verification(facts: dict[str, object], max_g: int) -> VerificationIn:
    return VerificationIn(
        certificate_no="SZJL-DEMO",
        verifying_body="Shenzhen Institute of Metrology (simulated)",
        verified_on=dt.date.today() - dt.timedelta(days=30),
        seal_no="SEAL-DEMO",
        technician="demo",
        coefficient=float(facts["coefficient"]),  # type: ignore[arg-type]
        zero_counts=int(facts["zero_counts"]),  # type: ignore[call-overload]
        calibration_events=int(facts["calibration_events"]),  # type: ignore[call-overload]
        configuration_events=int(facts["configuration_events"]),  # type: ignore[call-overload]
        readings=[ReadingIn(reference_g=g, indicated_g=g) for g in (max_g / 30, max_g / 3, float(max_g))],
    )
