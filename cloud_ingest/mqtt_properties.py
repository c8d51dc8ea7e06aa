"""MQTT 5 properties of received packets, decoded with paho's tables built once instead of once per packet.

paho-mqtt's ``Properties()`` builds the tables of every MQTT 5 property (names, wire types, the packets
each applies to: three containers, some thirty entries, with list look-ups) anew in each instance, and
its packet decoder (``paho.mqtt._packet``) makes one for every PUBLISH received and one or two for every
PUBACK of what we publish. ``benchmarks/ingest_shipped.py --profile`` measured that at 15 % of the
ingest's CPU at one record per message (issue 13). The tables are constants, so
:class:`SharedTableProperties` is paho's class whose instances share one copy of them, and whose
``unpack`` of an empty property list (the usual PUBLISH and PUBACK) returns at once, as paho's would
after its loop over nothing. Everything else is paho's: the same class (a subclass), attributes, values
and errors.

:func:`install` makes paho's decoder build these. It changes only that module's name ``Properties``,
and only when it is paho's own class (paho 2.2's layout, which the tests check); with another paho
version it does nothing, and decoding stays as it was: slower, and just as correct.
"""

from __future__ import annotations

import logging
from typing import Any

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

log = logging.getLogger(__name__)

_TABLES = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
_OWN = frozenset({"packetType", "types", "names", "properties"})  # what paho keeps besides property values


class SharedTableProperties(Properties):
    """paho's :class:`~paho.mqtt.properties.Properties`, its tables shared by every instance (read-only)."""

    def __init__(self, packetType: int) -> None:  # noqa: N803 (paho's name)
        object.__setattr__(self, "packetType", packetType)
        object.__setattr__(self, "types", _TABLES.types)
        object.__setattr__(self, "names", _TABLES.names)
        object.__setattr__(self, "properties", _TABLES.properties)

    def unpack(self, buffer: Any) -> tuple[Properties, int]:
        if buffer[:1] == b"\x00" and self.__dict__.keys() <= _OWN:  # no properties, none set before
            return self, 1
        result: tuple[Properties, int] = super().unpack(buffer)  # type: ignore[no-untyped-call]
        return result


def install() -> bool:
    """Have paho's packet decoder build :class:`SharedTableProperties`; True if it does (idempotent)."""
    try:
        from paho.mqtt import _packet
    except ImportError:  # paho before 2.2 decodes in its client module: left as it is
        return False
    current = getattr(_packet, "Properties", None)
    if current is SharedTableProperties:
        return True
    if current is not Properties:
        log.debug("paho's packet decoder has no Properties of paho's own; received properties decoded as paho does")
        return False
    setattr(_packet, "Properties", SharedTableProperties)  # noqa: B010 (a private module's name)
    return True
