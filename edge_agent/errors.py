"""Errors of the edge agent::

AgentError
├── DeviceError       the device misbehaved: no answer in time, a reply we cannot use (the peer is wrong)
│   └── DeviceTimeout no complete reply within the profile's timeout
├── OutboxFull        the outbox quota is reached; the record was not taken (the device keeps it)
├── OutboxWriteError  the outbox's transaction failed (disk, database): nothing of it was stored
└── ConfigError       the agent's configuration is unusable (we are wrong)
"""

from __future__ import annotations


class AgentError(Exception):
    """Base class of every error raised by :mod:`edge_agent`."""


class DeviceError(AgentError):
    """The device did not answer as its profile says it should."""


class DeviceTimeout(DeviceError):
    """No complete reply from the device in time."""


class OutboxFull(AgentError):
    """The outbox is at its byte quota; the record stays on the device until there is room.

    ``stored`` holds, for :meth:`Outbox.put_many`, the results of the records before the one that did not
    fit, which *are* stored (empty for :meth:`Outbox.put`)."""

    def __init__(self, message: str, *, stored: list[int | None] | None = None) -> None:
        super().__init__(message)
        self.stored: list[int | None] = stored or []


class OutboxWriteError(AgentError):
    """The transaction that was to store the record failed (a disk or database error, the cause): nothing of
    it was stored, for this caller nor for any other whose records shared it."""


class ConfigError(AgentError):
    """The agent's configuration cannot be used."""
