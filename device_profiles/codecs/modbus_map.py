"""Register maps: 16-bit Modbus registers ↔ physical values, and read planning. Pure functions, no I/O.

A value spans one register (``int16``, ``uint16``) or two (``int32``, ``uint32``, ``float32``).
``word_order`` says which register holds the high word of a 32-bit value, ``byte_order`` which byte of
each register comes first on the wire (some vendors swap bytes inside the word). The physical value is
``raw × scale + offset``. Done with :mod:`struct` rather than pymodbus' converters because those know no
byte swap, and so this contract package stays free of the Modbus client library.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from ..schema import ModbusRegister, RawType

_FORMAT: dict[RawType, str] = {"int16": ">h", "uint16": ">H", "int32": ">i", "uint32": ">I", "float32": ">f"}
MAX_READ = 125  # registers per Modbus read request (function codes 3 and 4)


@dataclass(frozen=True, slots=True)
class ReadBlock:
    """One read request: ``count`` registers of ``table`` from ``start``."""

    table: str
    start: int
    count: int


def _wire_bytes(words: Sequence[int], reg: ModbusRegister) -> bytes:
    ordered = list(words) if reg.word_order == "big" else list(reversed(words))
    out = b"".join(w.to_bytes(2, "big") for w in ordered)
    if reg.byte_order == "little":
        out = b"".join(out[i : i + 2][::-1] for i in range(0, len(out), 2))
    return out


def raw_value(reg: ModbusRegister, words: Sequence[int]) -> float:
    """The raw number held in ``words`` (the register's ``count`` registers, in address order)."""
    if len(words) != reg.count or any(not 0 <= w <= 0xFFFF for w in words):
        raise ValueError(f"{reg.field}: want {reg.count} 16-bit registers, got {list(words)}")
    value: float = struct.unpack(_FORMAT[reg.raw_type], _wire_bytes(words, reg))[0]
    return value


def physical(reg: ModbusRegister, words: Sequence[int]) -> float:
    """The physical value (``raw × scale + offset``), rounded to the register's resolution."""
    value = raw_value(reg, words) * reg.scale + reg.offset
    digits = max(0, -math.floor(math.log10(abs(reg.scale)))) if reg.raw_type != "float32" else 6
    return round(value, digits)


def to_registers(reg: ModbusRegister, value: float) -> list[int]:
    """Registers (in address order) holding the physical ``value``; for simulators. Raises ValueError."""
    raw = (value - reg.offset) / reg.scale
    number: float | int = raw if reg.raw_type == "float32" else round(raw)
    try:
        packed = struct.pack(_FORMAT[reg.raw_type], number)
    except struct.error as exc:
        raise ValueError(f"{reg.field}={value} does not fit {reg.raw_type}") from exc
    if reg.byte_order == "little":
        packed = b"".join(packed[i : i + 2][::-1] for i in range(0, len(packed), 2))
    words = [int.from_bytes(packed[i : i + 2], "big") for i in range(0, len(packed), 2)]
    return words if reg.word_order == "big" else list(reversed(words))


def plan_reads(registers: Sequence[ModbusRegister], *, max_gap: int = 8) -> list[ReadBlock]:
    """Few read requests covering every register: neighbours closer than ``max_gap`` share one read."""
    blocks: list[ReadBlock] = []
    for reg in sorted(registers, key=lambda r: (r.table, r.address)):
        end = reg.address + reg.count
        last = blocks[-1] if blocks else None
        if (
            last is not None
            and last.table == reg.table
            and reg.address - (last.start + last.count) <= max_gap
            and end - last.start <= MAX_READ
        ):
            blocks[-1] = ReadBlock(last.table, last.start, max(last.start + last.count, end) - last.start)
        else:
            blocks.append(ReadBlock(reg.table, reg.address, reg.count))
    return blocks


def slice_words(reg: ModbusRegister, blocks: dict[ReadBlock, list[int]]) -> list[int]:
    """The words of ``reg`` out of the results of :func:`plan_reads`' blocks."""
    for block, words in blocks.items():
        if (
            block.table == reg.table
            and block.start <= reg.address
            and reg.address + reg.count <= block.start + block.count
        ):
            offset = reg.address - block.start
            return words[offset : offset + reg.count]
    raise KeyError(f"no block holds {reg.field}")
