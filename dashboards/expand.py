"""Panel queries expanded exactly as Grafana 11.6 expands raw InfluxQL, so tests can run them on a real
InfluxDB without a Grafana server (none installs here).

What Grafana does, read from its source (grafana/grafana):

- the dashboard's frontend (``PanelQueryRunner`` → ``rangeutil.calculateInterval``) computes the interval as
  ``roundInterval((to − from) / maxDataPoints)``, at least the panel's (or datasource's) minimum interval,
  and prints it in one unit with ``secondsToHms`` (``30s``, ``5m``, ``1h``, ``1d``; 1 w prints ``7d``);
  the frontend ladder compares with ``<`` (the backend's ``intervalv2.roundInterval`` for alert rules with
  ``<=``, which differs only on a rung's boundary);
- the InfluxDB datasource's ``applyVariables`` replaces dashboard variables in the raw query through
  ``interpolateQueryExpr``: a numeric value as is; a multi-value (or *All*) variable always as
  regex-escaped ``(a|b)``; a single value regex-escaped only when it stands inside a ``=~ /…/`` or
  ``!~ /…/`` regex of the query, else as is (so ``= '${market}'``); ``escapeRegex`` escapes
  ``\\ ^ $ * + ? . ( ) | [ ] { } /``. ``${__from}`` / ``${__to}`` are the range in epoch ms;
- the backend (``pkg/tsdb/influxdb/models/query.go``, ``Build``) replaces ``$timeFilter`` with
  ``time >= <from>ms and time <= <to>ms``, ``$interval`` and ``$__interval`` with the interval's text
  (``gtime.FormatInterval``, the same one-unit text) and ``$__interval_ms`` with its milliseconds.

Variables are written ``$name``, ``${name}`` or ``[[name]]``; ``${name:format}`` is not used by our
dashboards and is refused (so a panel cannot silently depend on a format this module does not model).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from .errors import ExpandError

#: The frontend ladder (``rangeutil.roundInterval``): (upper bound exclusive, interval), in ms.
_LADDER: tuple[tuple[float, int], ...] = (
    (10, 1),
    (15, 10),
    (35, 20),
    (75, 50),
    (150, 100),
    (350, 200),
    (750, 500),
    (1_500, 1_000),
    (3_500, 2_000),
    (7_500, 5_000),
    (12_500, 10_000),
    (17_500, 15_000),
    (25_000, 20_000),
    (45_000, 30_000),
    (90_000, 60_000),
    (210_000, 120_000),
    (450_000, 300_000),
    (750_000, 600_000),
    (1_050_000, 900_000),
    (1_500_000, 1_200_000),
    (2_700_000, 1_800_000),
    (5_400_000, 3_600_000),
    (9_000_000, 7_200_000),
    (16_200_000, 10_800_000),
    (32_400_000, 21_600_000),
    (86_400_000, 43_200_000),
    (604_800_000, 86_400_000),
    (1_814_400_000, 604_800_000),
    (3_628_800_000, 2_592_000_000),
)
_YEAR_MS = 31_536_000_000
_UNITS_S = (("y", 31_536_000), ("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1))
_REGEX_SPECIAL = re.compile(r"[\\^$*+?.()|\[\]{}/]")
# `$name`, `${name}`, `${name:fmt}`, `[[name]]` (Grafana's variable regex, less the field path forms)
_VARIABLE = re.compile(r"\$(\w+)|\[\[(\w+?)\]\]|\$\{(\w+)(?::([^}]*))?\}")
# the datasource's search for regexes in the query (interpolateQueryExpr)
_QUERY_REGEX = re.compile(
    r"(\s*(=|!)~\s*)/((?![*+?])(?:[^\r\n\[/\\]|\\.|\[(?:[^\r\n\]\\]|\\.)*\])+)/"
    r"((?:g(?:im?|mi?)?|i(?:gm?|mg?)?|m(?:gi?|ig?)?)?)"
)
_BACKEND_MACROS = ("timeFilter", "interval", "__interval", "__interval_ms")


def round_interval(ms: float) -> int:
    """Grafana's interval ladder (frontend ``roundInterval``), in ms."""
    for bound, interval in _LADDER:
        if ms < bound:
            return interval
    return _YEAR_MS


def seconds_to_hms(seconds: float) -> str:
    """The interval in one unit, as ``rangeutil.secondsToHms`` prints it."""
    rest = seconds
    for unit, size in _UNITS_S:
        n = math.floor(rest / size)
        if n:
            return f"{n}{unit}"
        rest %= size
    ms = math.floor(seconds * 1000)
    return f"{ms}ms" if ms else "less than a millisecond"


def parse_interval_ms(text: str) -> int:
    """A Grafana interval string (``10s``, ``1m``, ``500ms``; a bare number is seconds) in ms."""
    m = re.fullmatch(r"(\d+)(ms|s|m|h|d|w|y)?", text.strip().lstrip(">"))
    if m is None:
        raise ExpandError(f"not an interval: {text!r}")
    factor = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
    return int(m[1]) * factor.get(m[2] or "s", _YEAR_MS)


def escape_regex(value: str) -> str:
    """``escapeRegex`` of @grafana/data."""
    return _REGEX_SPECIAL.sub(lambda m: "\\" + m[0], value)


@dataclass(frozen=True, slots=True)
class Interval:
    ms: int
    text: str


def calculate_interval(from_ms: int, to_ms: int, max_data_points: int, min_interval: str | None = None) -> Interval:
    """``rangeutil.calculateInterval``: the ladder's rung for (to − from) / maxDataPoints, at least the minimum."""
    if max_data_points <= 0:
        raise ExpandError(f"maxDataPoints must be positive, not {max_data_points}")
    ms = round_interval((to_ms - from_ms) / max_data_points)
    low = parse_interval_ms(min_interval) if min_interval else 1
    ms = max(ms, low)
    return Interval(ms, seconds_to_hms(ms / 1000))


@dataclass(frozen=True, slots=True)
class Variable:
    """A dashboard variable's current value(s) as Grafana hands them to the datasource."""

    name: str
    values: tuple[str, ...]
    multi: bool = False  # multi-value or "include All" with All selected: always (a|b)

    @staticmethod
    def single(name: str, value: str) -> Variable:
        return Variable(name, (value,))

    @staticmethod
    def many(name: str, values: Sequence[str]) -> Variable:
        return Variable(name, tuple(values), multi=True)


def _is_number(value: str) -> bool:
    # JavaScript parseFloat: a leading number is enough ("12abc" → 12)
    return re.match(r"\s*[-+]?(\d+\.?\d*|\.\d+)", value) is not None


def _interpolate(variable: Variable, query: str) -> str:
    """``interpolateQueryExpr`` of the InfluxDB datasource."""
    values = variable.values
    if not variable.multi and len(values) == 1 and _is_number(values[0]):
        return values[0]
    if variable.multi:
        return "(" + "|".join(escape_regex(v) for v in values) + ")"
    value = values[0] if values else ""
    in_regex = re.compile(r"/(?:\^)?(.*)(\$" + re.escape(variable.name) + r")(.*)(?:\$)?/")
    for m in _QUERY_REGEX.finditer(query):
        if in_regex.search(m[0]):
            return escape_regex(value)
    return value


def replace_variables(query: str, variables: Mapping[str, Variable], from_ms: int, to_ms: int) -> str:
    """The frontend's pass: dashboard variables and ``${__from}``/``${__to}``; backend macros are left."""
    builtins = {"__from": str(from_ms), "__to": str(to_ms)}

    def one(m: re.Match[str]) -> str:
        name = m[1] or m[2] or m[3]
        if m[4] is not None:
            raise ExpandError(f"${{{name}:{m[4]}}}: variable formats are not modelled")
        if name in builtins:
            return builtins[name]
        if name in _BACKEND_MACROS:
            return m[0]
        var = variables.get(name)
        if var is None:
            raise ExpandError(f"${name} is not a variable of this dashboard")
        # Grafana's variable regex reads `$name` greedily: `$marketx` is a variable named marketx
        return _interpolate(var, query)

    return _VARIABLE.sub(one, query)


def backend_macros(query: str, from_ms: int, to_ms: int, interval: Interval) -> str:
    """``models.Query.Build`` for a raw query: in this order, as Grafana does."""
    out = query.replace("$timeFilter", f"time >= {from_ms}ms and time <= {to_ms}ms")
    out = out.replace("$interval", interval.text)
    out = out.replace("$__interval_ms", str(interval.ms))
    return out.replace("$__interval", interval.text)


@dataclass(frozen=True, kw_only=True)
class Expansion:
    """A panel's time range and variables."""

    from_ms: int
    to_ms: int
    max_data_points: int = 1_000
    min_interval: str | None = None
    variables: Mapping[str, Variable] = field(default_factory=dict)

    def interval(self) -> Interval:
        return calculate_interval(self.from_ms, self.to_ms, self.max_data_points, self.min_interval)

    def expand(self, query: str) -> str:
        """The InfluxQL that Grafana 11.6 sends to InfluxDB for ``query``."""
        if self.to_ms < self.from_ms:
            raise ExpandError("the time range ends before it starts")
        frontend = replace_variables(query, self.variables, self.from_ms, self.to_ms)
        return backend_macros(frontend, self.from_ms, self.to_ms, self.interval())
