"""The expansion of panel queries follows Grafana 11.6 (cases from its own tests and code where it has them)."""

from __future__ import annotations

import pytest

from dashboards import ExpandError, Expansion, Variable
from dashboards.expand import calculate_interval, escape_regex, parse_interval_ms, round_interval, seconds_to_hms

H = 3_600_000
T0 = 1_764_547_200_000  # 2025-12-01 00:00 UTC


@pytest.mark.parametrize(
    ("raw_ms", "rung"),
    [
        (0, 1),
        (9.99, 1),
        (10, 10),  # the frontend ladder is "<": 10 ms is the next rung (the backend's "<=" gives 1 ms)
        (14, 10),
        (3_600, 5_000),
        (7_499, 5_000),
        (7_500, 10_000),
        (44_999, 30_000),
        (86_399_999, 43_200_000),
        (86_400_000, 86_400_000),
        (604_799_999, 86_400_000),
        (604_800_000, 604_800_000),
        (3_628_800_000, 31_536_000_000),
    ],
)
def test_the_interval_ladder(raw_ms: float, rung: int) -> None:
    assert round_interval(raw_ms) == rung


@pytest.mark.parametrize(
    ("ms", "text"),
    [
        (1, "1ms"),
        (500, "500ms"),
        (1_000, "1s"),
        (30_000, "30s"),
        (60_000, "1m"),
        (3_600_000, "1h"),
        (43_200_000, "12h"),
        (86_400_000, "1d"),
        (604_800_000, "7d"),
        (2_592_000_000, "30d"),
        (31_536_000_000, "1y"),
    ],
)
def test_intervals_print_in_one_unit(ms: int, text: str) -> None:
    assert seconds_to_hms(ms / 1000) == text


def test_interval_from_range_and_max_data_points() -> None:
    assert calculate_interval(T0, T0 + H, 1_000) == calculate_interval(T0, T0 + H, 1_000)
    six_hours = calculate_interval(T0, T0 + 6 * H, 500)  # 43.2 s → 30 s
    assert (six_hours.ms, six_hours.text) == (30_000, "30s")
    floor = calculate_interval(T0, T0 + 60_000, 1_000, "10s")  # 60 ms, but the panel's minimum is 10 s
    assert (floor.ms, floor.text) == (10_000, "10s")
    with pytest.raises(ExpandError):
        calculate_interval(T0, T0 + H, 0)
    assert parse_interval_ms(">1m") == 60_000 and parse_interval_ms("15") == 15_000
    with pytest.raises(ExpandError):
        parse_interval_ms("soon")


def test_macros_as_the_backend_replaces_them() -> None:
    exp = Expansion(from_ms=T0, to_ms=T0 + 6 * H, max_data_points=500)
    q = 'SELECT count("x") FROM "m" WHERE $timeFilter GROUP BY time($__interval) -- $interval $__interval_ms'
    assert exp.expand(q) == (
        f'SELECT count("x") FROM "m" WHERE time >= {T0}ms and time <= {T0 + 6 * H}ms GROUP BY time(30s) -- 30s 30000'
    )
    assert Expansion(from_ms=T0, to_ms=T0 + 1).expand("${__from} ${__to}") == f"{T0} {T0 + 1}"


def test_escape_regex_is_grafanas() -> None:
    assert escape_regex("/special/path") == r"\/special\/path"
    assert escape_regex("a.b*c+d?e(f)g|h[i]j{k}l^m$n\\o-p") == r"a\.b\*c\+d\?e\(f\)g\|h\[i\]j\{k\}l\^m\$n\\o-p"


def _one(name: str, value: str, query: str) -> str:
    return Expansion(from_ms=T0, to_ms=T0, variables={name: Variable.single(name, value)}).expand(query)


def test_single_values_escaped_only_inside_a_regex() -> None:
    # the cases of Grafana's interpolateQueryExpr tests
    assert _one("v", "normalValue", "my query $v") == "my query normalValue"
    assert _one("v", "/special/path", "that where path =~ /$v/") == r"that where path =~ /\/special\/path/"
    assert _one("v", "/special/path", "path !~ /^$v$/") == r"path !~ /^\/special\/path$/"
    assert _one("v", "/special/path", "where path = '$v'") == "where path = '/special/path'"
    assert _one("v", "12.2", "where x = '$v'") == "where x = '12.2'"
    assert _one("v", "1.0", "select value / $v from /^measurement$/") == "select value / 1.0 from /^measurement$/"
    assert _one("market", "a.b", "\"market\" = '${market}'") == "\"market\" = 'a.b'"
    assert _one("market", "a.b", '"market" =~ /^$market$/') == r'"market" =~ /^a\.b$/'
    # Grafana looks for `$name` inside the regex: written `${name}`, a single value goes in unescaped (our
    # dashboards use multi-value variables in regexes, which are always escaped)
    assert _one("market", "a.b", '"market" =~ /^${market}$/') == '"market" =~ /^a.b$/'
    assert _one("stall", "A-001", "[[stall]]") == "A-001"


def test_multi_values_always_escaped_and_joined() -> None:
    exp = Expansion(from_ms=T0, to_ms=T0, variables={"v": Variable.many("v", ["/special/path", "/some/other/path"])})
    assert exp.expand("path = '$v'") == r"path = '(\/special\/path|\/some\/other\/path)'"
    one = Expansion(from_ms=T0, to_ms=T0, variables={"d": Variable.many("d", ["futian"])})
    assert one.expand('"district" =~ /^${district}$/'.replace("district}", "d}")) == '"district" =~ /^(futian)$/'


def test_unknown_variables_and_formats_are_refused() -> None:
    exp = Expansion(from_ms=T0, to_ms=T0)
    with pytest.raises(ExpandError, match="not a variable"):
        exp.expand("WHERE x = '$market'")
    with pytest.raises(ExpandError, match="formats"):
        Expansion(from_ms=T0, to_ms=T0, variables={"v": Variable.single("v", "x")}).expand("${v:csv}")
    with pytest.raises(ExpandError, match="ends before"):
        Expansion(from_ms=T0 + 1, to_ms=T0).expand("$timeFilter")
