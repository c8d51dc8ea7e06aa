"""From a sensor's registers to records: readings, and faults that are not readings. No I/O.

For each channel (register) of a profile's map, one poll yields either its physical value in the
reading record, or a ``sensor_fault`` record saying why not:

- ``timeout``: the sensor did not answer (one record, channel ``all``);
- ``out_of_range``: the value lies outside the register's physical range in the profile;
- ``stuck``: the raw registers were identical for ``stuck_after`` polls in a row. A value at the bottom
  of its range (light at night, zero flow) is exempt: a constant zero is normal there.
"""

from __future__ import annotations

from typing import Any

from device_profiles.codecs import modbus_map
from device_profiles.records import RECORD_TYPES
from device_profiles.schema import ModbusSpec


class SensorReader:
    """Turns polls of one sensor into records; keeps the per-channel history that stuck detection needs."""

    def __init__(self, spec: ModbusSpec) -> None:
        self.spec = spec
        self.blocks = modbus_map.plan_reads(spec.registers)
        self._last: dict[str, list[int]] = {}
        self._repeats: dict[str, int] = {}
        self._kinds = {name: f.kind for name, f in RECORD_TYPES[spec.record_type].fields.items()}

    def records(self, words_by_block: dict[modbus_map.ReadBlock, list[int]], *, ts_ms: int) -> list[dict[str, Any]]:
        """The reading (if any channel is good) and one fault record per bad channel."""
        reading: dict[str, Any] = {"type": self.spec.record_type, "ts": ts_ms}
        faults: list[dict[str, Any]] = []
        for reg in self.spec.registers:
            words = modbus_map.slice_words(reg, words_by_block)
            value = modbus_map.physical(reg, words)
            lo, hi = reg.range
            repeats = self._repeats.get(reg.field, 0) + 1 if self._last.get(reg.field) == words else 1
            self._last[reg.field], self._repeats[reg.field] = words, repeats
            if not lo <= value <= hi:
                faults.append(
                    fault(reg.field, "out_of_range", ts_ms, raw=value, detail=f"range {lo:g}…{hi:g} {reg.unit}")
                )
            elif repeats >= self.spec.stuck_after and value != lo:
                faults.append(fault(reg.field, "stuck", ts_ms, raw=value, detail=f"same value {repeats} polls"))
            else:
                reading[reg.field] = round(value) if self._kinds[reg.field] == "int" else value
        return ([reading] if len(reading) > 2 else []) + faults

    def timeout(self, *, ts_ms: int, detail: str) -> list[dict[str, Any]]:
        """The fault record of a poll that got no answer (channel ``all``)."""
        return [fault("all", "timeout", ts_ms, detail=detail)]


def fault(channel: str, kind: str, ts_ms: int, *, raw: float | None = None, detail: str = "") -> dict[str, Any]:
    record: dict[str, Any] = {"type": "sensor_fault", "ts": ts_ms, "channel": channel, "fault": kind}
    if raw is not None:
        record["raw"] = float(raw)
    if detail:
        record["detail"] = detail[:200]
    return record
