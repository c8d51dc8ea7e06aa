"""Inputs that try to break a codec, shared by the suite's short fuzz and ``benchmarks/codec_fuzz.py``.

For each codec a :class:`Target` names its decode function, valid frames to mutate, the bytes that
mean something to it, and a generator of hostile patterns: the shapes that make parsers backtrack (long
runs of token characters followed by a tab or a quote, runs of white space before a bad checksum) and
lines just below, at and above the codec's limit. :func:`inputs` mixes random bytes, mutated valid
frames and hostile patterns from a seeded :class:`random.Random`, so a failing input can be reproduced.
:func:`run` drains one input through a :class:`FrameBuffer` and returns an unexpected exception (anything
but a frame or our FrameError) instead of raising it.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from device_profiles import builtin
from device_profiles.codecs import lines, modbus_map, mtsics, nmea, toledo
from device_profiles.codecs import rapid_test as rt
from device_profiles.codecs.frame_buffer import FrameBuffer
from device_profiles.errors import FrameError
from device_profiles.schema import ModbusRegister

Decode = Callable[[bytearray], tuple[Any, int]]
# bytes that mean something to each codec: random inputs drawn from them reach deeper than noise
MTSICS_BYTES = b' "\tAZ09.+-S\r\n\x0b\x1c\xff'
TOLEDO_BYTES = b"\x02\x0d\x20\x21\x29\x35\x300123456789"
RT_BYTES = b"$ZJRT,*0A.9-e \r\n\xe9"
CAPTURES = Path(__file__).resolve().parents[1] / "data" / "nmea"
RT_SPEC = builtin("zj-rt-12").rapid_test
assert RT_SPEC is not None


@dataclass(frozen=True)
class Target:
    """One codec under fuzz."""

    name: str
    decode: Decode
    valid: tuple[bytes, ...]
    alphabet: bytes
    limit: int  # longest frame the codec accepts
    hostile: Callable[[random.Random, int], bytes]


# -- valid frames -------------------------------------------------------------------------------------
def _mtsics_valid() -> tuple[bytes, ...]:
    return (
        b"S S      0.275 kg\r\n",
        b"S D      1.005 kg\r\n",
        b"S +\r\n",
        b"ES\r\n",
        b'XSW A "ZJ-PCS-FW 2.1.0 crc=5A3C"\r\n',
        b'XTR A 17 1764000000000 "1001" 275000 0 12300 3383 1 800 125500 120000 3 7\r\n',
        b'XTR A 19 1764000000000 "1001" 275000 0 12300 3383 1 800 125500 120000 3 7 "" "weighed" 120002 41\r\n',
        b"XTR I\r\n",
        mtsics.encode("XTA", "17"),
        mtsics.encode("XMD", "A", "III", "30000", "100", "5000", "5000"),
    )


def _toledo_frames() -> list[toledo.ToledoFrame]:
    def frame(**over: Any) -> toledo.ToledoFrame:
        base: dict[str, Any] = dict(
            weight=1275, tare=50, decimal_code=5, increment=5, net=True, negative=False, out_of_range=False,
            motion=False, unit="kg",
        )  # fmt: skip
        base.update(over)
        return toledo.ToledoFrame(**base)

    return [frame(), frame(weight=0, motion=True), frame(negative=True, weight=5), frame(unit="lb", decimal_code=4)]


def _nmea_valid() -> tuple[bytes, ...]:
    captured = [ln + b"\r\n" for f in sorted(CAPTURES.glob("*.nmea")) for ln in f.read_bytes().splitlines() if ln]
    return (
        *captured[:40],
        nmea.encode("GNRMC,120000.00,A,3110.0000,N,12120.0000,E,10.0,90.0,251126,,,A"),
        nmea.encode("GPGGA,120002.00,3110.0000,N,12120.0000,E,1,08,0.9,12.0,M,,M,,"),
        nmea.encode("PUBX,00,120000.00,3110.0000,N"),
    )


def _rapid_test_valid() -> tuple[bytes, ...]:
    assert RT_SPEC is not None
    out = []
    for channel in range(1, 4):
        inhibition, verdict = rt.verdict(0.62, 0.1 * channel, RT_SPEC)
        record = {
            "ts": 1_764_000_000_000 + channel, "channel": channel, "sample_id": f"S-{channel}",
            "sample_name": "韭菜 leek", "sample_category": "leafy", "source_id": "stall-0012", "delta_a0": 0.62,
            "delta_at": 0.1 * channel, "inhibition_pct": inhibition, "result": verdict, "retest": 0,
            "reagent_lot": "L2611", "reagent_expiry": "2027-05-01", "temperature_c": 25.5, "operator": "wang",
        }  # fmt: skip
        out.append(rt.encode(record, RT_SPEC))
    return tuple(out)


# -- hostile patterns ---------------------------------------------------------------------------------
def _near(rng: random.Random, limit: int) -> int:
    """A length just below, at or above ``limit``, or anywhere below it."""
    return rng.choice([limit - 2, limit - 1, limit, limit + 1, limit + 2, rng.randint(1, limit)])


def _mtsics_hostile(rng: random.Random, limit: int) -> bytes:
    n = _near(rng, limit)
    token_char = rng.choice(b"AZaz09.+-@S")
    breaker = rng.choice([b"\t", b'"', b"\x0b", b"\x1c", b"\r", b"\xff", b""])
    shape = rng.randrange(6)
    if shape == 0:  # one long token, then what the old pattern choked on
        body = bytes([token_char]) * n + breaker
    elif shape == 1:  # many short tokens, then the same
        body = (b"A " * (n // 2))[:n] + breaker
    elif shape == 2:  # an unterminated quote after tokens
        body = b"XSW A " + b'"' + bytes([token_char]) * n
    elif shape == 3:  # quotes everywhere
        body = (b'"a"' * (n // 3 + 1))[:n] + breaker
    elif shape == 4:  # spaces, then a breaker
        body = b" " * n + breaker
    else:  # a valid reply stretched to the limit
        body = b"S S " + b"9" * max(0, n - 7) + b" kg"
    return body + rng.choice([b"\r\n", b"\n", b""])


def _nmea_hostile(rng: random.Random, limit: int) -> bytes:
    n = _near(rng, limit)
    ws = bytes(rng.choice(b" \t\r\x0b\x1c") for _ in range(3))
    shape = rng.randrange(5)
    if shape == 0:  # white space before a checksum that is not one: pynmea2's pattern backtracks here
        body = b"$GPGGA," + (ws * n)[: max(0, n - 10)] + b"*" + rng.choice([b"X", b"0", b"00x", b"", b"0" * 5])
    elif shape == 1:
        body = b"$GPRMC" + b"," * max(0, n - 9) + b"*00"
    elif shape == 2:
        body = b"$" + (ws * n)[: n - 1]
    elif shape == 3:  # proprietary sentences whose fields pynmea2 indexes unchecked
        body = nmea.encode(rng.choice(["PUBX", "PASHR", "PSXN", "PTNL", "PGRM", "PKWD", "PMGN", "PRDI"]))[:-2]
    else:
        body = b"$GP" + bytes(rng.choice(b"RMCGA,.0123456789*") for _ in range(n - 3))
    return body + rng.choice([b"\r\n", b"\n", b""])


def _rapid_test_hostile(rng: random.Random, limit: int) -> bytes:
    n = _near(rng, limit)
    shape = rng.randrange(4)
    if shape == 0:
        body = b"$ZJRT" + b"," * max(0, n - 8) + b"*00"
    elif shape == 1:  # huge numbers where numbers go
        body = b"$ZJRT," + b"9" * max(0, n - 9) + b"*00"
    elif shape == 2:
        body = b"$" * n
    else:  # many values, bad checksum text
        body = (b"$ZJRT" + b",1e999" * n)[: n - 3] + b"*" + rng.choice([b"zz", b"0", b"000"])
    return body + rng.choice([b"\r\n", b"\n", b""])


def _toledo_hostile(rng: random.Random, limit: int) -> bytes:
    del limit
    n = rng.randint(1, 600)
    shape = rng.randrange(4)
    good = toledo.encode(_toledo_frames()[0])
    if shape == 0:  # every byte a frame start
        return bytes([toledo.STX]) * n
    if shape == 1:  # plausible frame starts that never end in CR
        return (good[:12] * n)[:n]
    if shape == 2:  # garbage without STX, then a frame
        return bytes(rng.choice(b"0123456789\r ") for _ in range(n)) + good
    return (good[:-1] + bytes([good[-1] ^ 1])) * (n // 18 + 1)  # every checksum wrong


def _lines_hostile(rng: random.Random, limit: int) -> bytes:
    n = _near(rng, limit)
    return rng.choice([b"x" * n + b"\n", b"\r" * n + b"\n", b"\n" * n, b"x" * n])


def _lines_decode(buf: bytearray) -> tuple[bytes | None, int]:
    return lines.next_line(buf, max_len=mtsics.MAX_LINE)


def _rapid_test_decode(buf: bytearray) -> tuple[dict[str, Any] | None, int]:
    assert RT_SPEC is not None
    return rt.decode(buf, RT_SPEC)


# -- modbus_map: register words, not a byte stream; adapted to decode() so it is fuzzed the same way ---
_REGISTERS = [
    *(r for p in ("soil-rs485", "air-rs485") for r in (builtin(p).modbus.registers)),  # type: ignore[union-attr]
    *(
        ModbusRegister(
            field="temperature_c",
            address=0,
            raw_type=t,
            word_order=w,
            byte_order=b,
            scale=s,
            unit="°C",
            range=(-40, 80),
        )
        for t in ("int16", "uint16", "int32", "uint32", "float32")
        for w in ("big", "little")
        for b in ("big", "little")
        for s in (0.1, 1.0, 1e-6)
    ),
]


def _modbus_decode(buf: bytearray) -> tuple[float | None, int]:
    """First byte picks a register, its second a word count (usually the right one), then 16-bit words."""
    if len(buf) < 2:
        return None, 0
    reg = _REGISTERS[buf[0] % len(_REGISTERS)]
    count = reg.count if buf[1] & 0x80 else buf[1] % 4
    size = 2 + 2 * count
    if len(buf) < size:
        return None, 0
    words = [int.from_bytes(buf[i : i + 2], "big") for i in range(2, size, 2)]
    try:
        return modbus_map.physical(reg, words), size
    except ValueError as exc:  # raw_value's documented refusal of a wrong word count
        raise FrameError("bad_words", size, str(exc)) from exc


def _modbus_hostile(rng: random.Random, limit: int) -> bytes:
    del limit
    special = [0x7F80, 0xFF80, 0x7FC0, 0x0000, 0x8000, 0xFFFF, 0x0001]  # float32 inf, -inf, nan, …
    out = bytearray()
    for _ in range(rng.randint(1, 40)):
        out += bytes([rng.randrange(256), 0x80 | rng.randrange(128)])
        out += b"".join(rng.choice(special).to_bytes(2, "big") for _ in range(2))
    return bytes(out)


def targets() -> list[Target]:
    toledo_valid = tuple(toledo.encode(f) for f in _toledo_frames())
    modbus_valid = (bytes([0, 0x81, 0x00, 0xFA]), bytes([5, 0x82, 0x41, 0xC8, 0, 0]))
    return [
        Target("mtsics", mtsics.decode, _mtsics_valid(), MTSICS_BYTES, mtsics.MAX_LINE, _mtsics_hostile),
        Target("toledo", toledo.decode, toledo_valid, TOLEDO_BYTES, 18, _toledo_hostile),
        Target("nmea", nmea.decode, _nmea_valid(), b"$GPRMC,*0A.9 \t\r\nN", nmea.MAX_SENTENCE, _nmea_hostile),
        Target("rapid_test", _rapid_test_decode, _rapid_test_valid(), RT_BYTES, rt.MAX_LINE, _rapid_test_hostile),
        Target("lines", _lines_decode, (b"S S 1.000 kg\r\n", b"x\n"), b"x\r\n", mtsics.MAX_LINE, _lines_hostile),
        Target("modbus_map", _modbus_decode, modbus_valid, bytes(range(256)), 10, _modbus_hostile),
    ]


# -- mixing ---------------------------------------------------------------------------------------------
def _random_bytes(rng: random.Random, target: Target) -> bytes:
    n = rng.choice([rng.randint(0, 16), rng.randint(0, 128), rng.randint(0, target.limit + 64)])
    if rng.random() < 0.5:
        return rng.randbytes(n)
    return bytes(rng.choice(target.alphabet) for _ in range(n))


def _mutated(rng: random.Random, target: Target) -> bytes:
    data = bytearray(b"".join(rng.choice(target.valid) for _ in range(rng.randint(1, 4))))
    for _ in range(rng.randint(1, 5)):
        if not data:
            break
        i = rng.randrange(len(data))
        op = rng.randrange(6)
        if op == 0:
            data[i] ^= 1 << rng.randrange(8)
        elif op == 1:
            data.insert(i, rng.choice(target.alphabet))
        elif op == 2:
            del data[i]
        elif op == 3:
            j = rng.randint(i, min(len(data), i + 64))
            data[i:i] = data[i:j] * rng.randint(1, 8)  # a repeated slice: long runs of what the codec likes
        elif op == 4:
            del data[rng.randint(i, len(data)) :]
        else:
            data[i] = rng.choice(target.alphabet)
    return bytes(data)


def inputs(target: Target, rng: random.Random, n: int) -> Iterator[bytes]:
    """``n`` inputs: a third random bytes, a third mutated valid frames, a third hostile patterns."""
    for i in range(n):
        kind = i % 3
        if kind == 0:
            yield _random_bytes(rng, target)
        elif kind == 1:
            yield _mutated(rng, target)
        else:
            yield target.hostile(rng, target.limit)


def run(fb: FrameBuffer[Any], data: bytes) -> tuple[int, BaseException | None]:
    """Drain ``data`` through a cleared ``fb``: (frames decoded, the unexpected exception or None)."""
    fb.clear()
    try:
        return len(fb.feed(data)), None
    except Exception as exc:  # the point of a fuzz run: report it, with its input, instead of stopping
        return 0, exc
