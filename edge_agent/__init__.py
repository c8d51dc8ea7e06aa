"""The edge agent: reads devices in their own protocols, keeps every record in a durable outbox, and
publishes it over MQTT. See :mod:`edge_agent.scale_agent` for the loop and its guarantees."""

from .errors import AgentError, ConfigError, DeviceError, DeviceTimeout, OutboxFull
from .mtsics_driver import MtSicsScale
from .outbox import Outbox
from .publisher import BrokerConfig, Publisher
from .scale_agent import ScaleAgent, ScaleAgentConfig

__all__ = [
    "AgentError",
    "BrokerConfig",
    "ConfigError",
    "DeviceError",
    "DeviceTimeout",
    "MtSicsScale",
    "Outbox",
    "OutboxFull",
    "Publisher",
    "ScaleAgent",
    "ScaleAgentConfig",
]
