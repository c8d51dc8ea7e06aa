"""Register maps: known vectors, word and byte order, round trips, read planning."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from device_profiles import builtin
from device_profiles.codecs import modbus_map as mm
from device_profiles.schema import ModbusRegister


def reg(**over) -> ModbusRegister:
    base = dict(field="temperature_c", address=0, raw_type="int16", scale=0.1, unit="°C", range=(-40, 80))
    base.update(over)
    return ModbusRegister(**base)


@pytest.mark.parametrize(
    ("register", "words", "value"),
    [
        (reg(), [0xFF83], -12.5),  # signed 16-bit ×0.1
        (reg(raw_type="uint16"), [0xFF83], 6541.1),
        (reg(raw_type="uint32", scale=1, field="light_lux", unit="lx", range=(0, 200_000)), [0x0001, 0x86A0], 100_000),
        (
            reg(raw_type="uint32", scale=1, word_order="little", field="light_lux", unit="lx", range=(0, 200_000)),
            [0x86A0, 0x0001],
            100_000,
        ),
        (reg(raw_type="uint16", byte_order="little", scale=1), [0x3412], 0x1234),
        (reg(raw_type="float32", scale=1), [0x41C8, 0x0000], 25.0),
        (reg(offset=-40, raw_type="uint16"), [650], 25.0),
    ],
)
def test_known_vectors(register: ModbusRegister, words: list[int], value: float) -> None:
    assert mm.physical(register, words) == pytest.approx(value)
    assert mm.to_registers(register, value) == words


def test_wrong_word_count_and_overflow_are_errors() -> None:
    with pytest.raises(ValueError):
        mm.raw_value(reg(), [1, 2])
    with pytest.raises(ValueError):
        mm.to_registers(reg(), 5000.0)  # 50 000 does not fit int16


@given(
    st.sampled_from(["int16", "uint16", "int32", "uint32"]),
    st.sampled_from(["big", "little"]),
    st.sampled_from(["big", "little"]),
    st.integers(-(2**15), 2**16 - 1),
)
def test_round_trip(raw_type, word_order, byte_order, raw) -> None:
    r = reg(raw_type=raw_type, word_order=word_order, byte_order=byte_order, scale=1)
    if raw_type.startswith("u") and raw < 0:
        raw = -raw
    if raw_type == "int16" and raw > 2**15 - 1:
        raw -= 2**16
    assert mm.physical(r, mm.to_registers(r, raw)) == raw


def test_read_planning_merges_neighbours_and_splits_tables() -> None:
    regs = [reg(address=0), reg(address=1, field="ph"), reg(address=20, field="x"), reg(address=3, table="input")]
    blocks = mm.plan_reads(regs)
    assert blocks == [mm.ReadBlock("holding", 0, 2), mm.ReadBlock("holding", 20, 1), mm.ReadBlock("input", 3, 1)]
    air = builtin("air-rs485").modbus
    assert mm.plan_reads(air.registers) == [mm.ReadBlock("holding", 0, 5)]
    words = {mm.ReadBlock("holding", 0, 5): [1, 2, 3, 4, 5]}
    assert mm.slice_words(air.registers[3], words) == [4, 5]
