"""The edge agent: reads devices in their own protocols, keeps every record in a durable outbox, and
publishes it over MQTT. See :mod:`edge_agent.agent` for the loop and its guarantees."""

from .agent import Agent
from .errors import AgentError, ConfigError, DeviceError, DeviceTimeout, OutboxFull
from .modbus_driver import ModbusBus, ModbusSensor
from .mtsics_driver import MtSicsScale
from .outbox import Outbox
from .publisher import BrokerConfig, Publisher
from .sources import ModbusSource, MtSicsSource, Source, StreamSource, Taken

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
