"""The edge agent: reads devices in their own protocols, keeps every record in a durable outbox, and
publishes it over MQTT. See :mod:`edge_agent.agent` for the loop and its guarantees.

The public names below are imported when first used (PEP 562), not with the package: importing
``edge_agent.errors`` or ``edge_agent.bundle_file`` must not load paho, pyserial and pymodbus for a
process that never opens a device.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .agent import Agent
    from .errors import AgentError, ConfigError, DeviceError, DeviceTimeout, OutboxFull
    from .modbus_driver import ModbusBus, ModbusSensor
    from .mtsics_driver import MtSicsScale
    from .outbox import Outbox
    from .publisher import BrokerConfig, Publisher
    from .sources import ModbusSource, MtSicsSource, Source, StreamSource, Taken

_HOME = {
    "Agent": "agent",
    "AgentError": "errors",
    "ConfigError": "errors",
    "DeviceError": "errors",
    "DeviceTimeout": "errors",
    "OutboxFull": "errors",
    "ModbusBus": "modbus_driver",
    "ModbusSensor": "modbus_driver",
    "MtSicsScale": "mtsics_driver",
    "Outbox": "outbox",
    "BrokerConfig": "publisher",
    "Publisher": "publisher",
    "ModbusSource": "sources",
    "MtSicsSource": "sources",
    "Source": "sources",
    "StreamSource": "sources",
    "Taken": "sources",
}

__all__ = [
    "Agent",
    "AgentError",
    "BrokerConfig",
    "ConfigError",
    "DeviceError",
    "DeviceTimeout",
    "ModbusBus",
    "ModbusSensor",
    "ModbusSource",
    "MtSicsScale",
    "MtSicsSource",
    "Outbox",
    "OutboxFull",
    "Publisher",
    "Source",
    "StreamSource",
    "Taken",
]


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{home}", __name__), name)
    globals()[name] = value  # the next look-up is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_HOME])
