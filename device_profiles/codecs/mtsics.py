"""MT-SICS line codec (Mettler Toledo Standard Interface Command Set) and its value formats.

A line is ASCII tokens separated by spaces and ended by CR LF (a bare LF is accepted); tokens in double
quotes may hold spaces.
Commands (``S``, ``XTR``, ``XTA 17``) and responses (``S S     0.275 kg``, ``XTR I``, ``ES``) share this
syntax: a response's first token repeats the command and its second is the status letter
(A done, S stable, D dynamic, I cannot execute now, L logical error, + overload, - underload).

Decoding takes time linear in the line: :func:`tokenise` is one left-to-right pass that applies one
of three regular expressions without nested repetition at the current position, so no input can make it
backtrack (the single whole-line pattern it replaces took seconds on a 30-byte line).
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from ..errors import FrameError
from ..records import FieldKind
from .lines import next_line

MAX_LINE = 512
TERMINATOR = b"\r\n"
# Each applied once at a position; none nests a repetition, so each runs in time linear in what it reads.
_GAP_RE = re.compile(r" *")
_QUOTED_RE = re.compile(r'"([^"]*)"')
_BARE_RE = re.compile(r'[^\s"]+')
_DECIMAL_RE = re.compile(r"^([+-]?)(\d+)(?:\.(\d+))?$")
ERROR_REPLIES = frozenset({"ES", "ET", "EL"})


@dataclass(frozen=True, slots=True)
class Quoted:
    """A token to be sent in double quotes."""

    text: str


@dataclass(frozen=True, slots=True)
class Line:
    """One decoded MT-SICS line."""

    tokens: tuple[str, ...]

    @property
    def command(self) -> str:
        return self.tokens[0]

    @property
    def status(self) -> str:
        """The status letter of a response ('' for a bare error reply such as ``ES``)."""
        return self.tokens[1] if len(self.tokens) > 1 else ""

    @property
    def values(self) -> tuple[str, ...]:
        """Tokens after the command and status."""
        return self.tokens[2:]

    @property
    def args(self) -> tuple[str, ...]:
        """Tokens after the command (for a line sent to the device)."""
        return self.tokens[1:]


def decode(buf: bytes | bytearray) -> tuple[Line | None, int]:
    """Decode the first line of ``buf``: ``(line, consumed)``, or ``(None, 0)`` if it is incomplete."""
    raw, consumed = next_line(buf, max_len=MAX_LINE)
    if raw is None:
        return None, 0
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError as exc:
        raise FrameError("not_ascii", consumed, repr(raw[:40])) from exc
    if not text.strip():
        raise FrameError("empty_line", consumed)
    tokens = tokenise(text)
    if tokens is None:
        raise FrameError("bad_syntax", consumed, repr(text[:60]))
    return Line(tokens), consumed


def tokenise(text: str) -> tuple[str, ...] | None:
    """The tokens of one line without its terminator, or None if it is not MT-SICS syntax.

    Tokens are runs of characters other than white space and ``"``, or double-quoted text (which may
    hold anything but ``"``); only spaces may lie between and around them. Tokens need no space between
    them (``A"b"`` is two tokens), as the codec has always read them.
    """
    tokens: list[str] = []
    pos, end = 0, len(text)
    while True:
        gap = _GAP_RE.match(text, pos)
        assert gap is not None  # " *" matches everywhere
        pos = gap.end()
        if pos == end:
            return tuple(tokens)
        if text[pos] == '"':
            quoted = _QUOTED_RE.match(text, pos)
            if quoted is None:
                return None  # unterminated quote
            tokens.append(quoted.group(1))
            pos = quoted.end()
        else:
            bare = _BARE_RE.match(text, pos)
            if bare is None:
                return None  # white space other than a space outside quotes
            tokens.append(bare.group())
            pos = bare.end()


def encode(*tokens: str | Quoted) -> bytes:
    """Encode one line. Plain tokens must not hold white space or quotes; wrap text in :class:`Quoted`."""
    parts: list[str] = []
    for tok in tokens:
        if isinstance(tok, Quoted):
            if '"' in tok.text or "\r" in tok.text or "\n" in tok.text:
                raise ValueError(f"quoted token may not contain quotes or line ends: {tok.text!r}")
            parts.append(f'"{tok.text}"')
        else:
            if _BARE_RE.fullmatch(tok) is None:
                raise ValueError(f"bad plain token {tok!r}")
            parts.append(tok)
    line = " ".join(parts).encode("ascii")
    if len(line) > MAX_LINE:
        raise ValueError("line too long")
    return line + TERMINATOR


def encode_weight(command: str, status: str, value_mg: int, *, unit: str, decimals: int) -> bytes:
    """A weight response such as ``S S      0.275 kg`` (value right-aligned in 10 characters)."""
    text = format_decimal(value_mg, unit=unit, decimals=decimals)
    return f"{command} {status} {text:>10} {unit}".encode("ascii") + TERMINATOR


def format_decimal(value_mg: int, *, unit: str, decimals: int) -> str:
    """Milligrams as a decimal number of ``unit`` (g or kg) with ``decimals`` places, in integers."""
    per_unit = {"g": 1_000, "kg": 1_000_000}[unit]
    scale = 10**decimals
    scaled_num = abs(value_mg) * scale
    whole, rem = divmod(scaled_num, per_unit)
    if rem * 2 >= per_unit:
        whole += 1
    sign = "-" if value_mg < 0 and whole else ""
    if decimals == 0:
        return f"{sign}{whole}"
    return f"{sign}{whole // scale}.{whole % scale:0{decimals}d}"


def parse_weight(text: str, unit: str) -> int:
    """A decimal weight in g or kg as integer milligrams, without floats. Raises ValueError."""
    match = _DECIMAL_RE.fullmatch(text)
    if match is None or unit not in ("g", "kg"):
        raise ValueError(f"not a weight: {text!r} {unit!r}")
    sign, whole, frac = match.group(1), match.group(2), match.group(3) or ""
    exponent = {"g": 3, "kg": 6}[unit]
    if len(frac) > exponent:
        raise ValueError(f"more decimals than a milligram: {text!r} {unit}")
    mg = int(whole + frac.ljust(exponent, "0"))
    return -mg if sign == "-" else mg


def convert(token: str, kind: FieldKind) -> int | float | str | bool:
    """Convert a reply token to a record field value of ``kind``. Raises ValueError."""
    if kind == "int":
        if not re.fullmatch(r"-?\d{1,19}", token):
            raise ValueError(f"not an integer: {token!r}")
        return int(token)
    if kind == "float":
        value = float(token)
        if not math.isfinite(value):
            raise ValueError(f"not a finite number: {token!r}")
        return value
    if kind == "bool":
        if token not in {"0", "1"}:
            raise ValueError(f"not 0 or 1: {token!r}")
        return token == "1"  # noqa: S105 (not a password)
    return token


def render(value: int | float | str | bool, kind: FieldKind) -> str | Quoted:
    """The token for a field value of ``kind`` (inverse of :func:`convert`)."""
    if kind == "bool":
        return "1" if value else "0"
    if kind == "str":
        return Quoted(str(value))
    return str(value)


def fields_of(line: Line, names: Sequence[str], optional: Collection[str] = ()) -> dict[str, str]:
    """Map a response's values onto the reply field ``names`` of a profile extension. Raises ValueError.

    Fields named in ``optional`` may be left out: at the end of the reply (a device older than its profile
    sends fewer values; the profile adds fields only at the end), or anywhere as an empty quoted token
    ``""`` (not reported this time). Both are absent from the result. Every other field must be there."""
    values = line.values
    if len(values) > len(names) or (len(values) < len(names) and any(n not in optional for n in names[len(values) :])):
        raise ValueError(f"{line.command} reply has {len(values)} values, profile names {len(names)}")
    return {n: v for n, v in zip(names, values, strict=False) if v or n not in optional}
