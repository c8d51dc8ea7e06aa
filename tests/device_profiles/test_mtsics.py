"""MT-SICS codec: whole buffers, byte by byte, with trailing garbage, truncated prefixes, and fuzzing."""

from __future__ import annotations

import re

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from device_profiles import FrameError
from device_profiles.codecs import mtsics
from tests.support.codec_harness import drain, never_crashes, three_ways

REPLIES = [
    b"S S      0.275 kg\r\n",
    b"S D      1.005 kg\r\n",
    b"S +\r\n",
    b"ES\r\n",
    b'XSW A "ZJ-PCS-FW 2.1.0 crc=5A3C"\r\n',
    b'XTR A 17 1764000000000 "1001" 275000 0 12300 3383 1 800 125500 120000 3 7\r\n',
    b"XTR I\r\n",
    # firmware 2.2: tare_gross_mg, tare_kind, empty_counts, zero_set_events; "" when not reported
    b'XTR A 18 1764000000000 "1001" 275000 5000 12300 3383 1 800 125600 120000 3 7 0 "preset" 120002 41\r\n',
    b'XTR A 19 1764000000000 "1001" 275000 0 12300 3383 1 800 125500 120000 3 7 "" "" 120002 41\r\n',
]


def test_whole_buffer_byte_by_byte_and_trailing_garbage() -> None:
    whole = three_ways(mtsics.decode, b"".join(REPLIES), b"S S   1.0")
    assert [ln.command for ln in whole] == ["S", "S", "S", "ES", "XSW", "XTR", "XTR", "XTR", "XTR"]
    assert whole[0].status == "S" and whole[0].values == ("0.275", "kg")
    assert whole[4].values == ("ZJ-PCS-FW 2.1.0 crc=5A3C",)
    assert whole[5].values[2] == "1001"
    assert whole[7].values[-3:] == ("preset", "120002", "41") and whole[8].values[-4:] == ("", "", "120002", "41")


@pytest.mark.parametrize("reply", REPLIES)
def test_every_truncated_prefix_is_incomplete(reply: bytes) -> None:
    for cut in range(len(reply)):
        assert mtsics.decode(reply[:cut]) == (None, 0)


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (b"\r\n", "empty_line"),
        (b'S "unterminated\r\n', "bad_syntax"),
        (b"S S \xff\xfe kg\r\n", "not_ascii"),
        (b"X" * 600 + b"\r\n", "line_too_long"),
    ],
)
def test_bad_lines_are_dropped_and_the_stream_goes_on(bad: bytes, reason: str) -> None:
    lines, errors = drain(mtsics.decode, bad + b"S S 1.000 kg\r\n")
    assert errors == [reason]
    assert [line.values for line in lines] == [("1.000", "kg")]


def test_a_line_that_never_ends_is_bounded() -> None:
    with pytest.raises(FrameError, match="line_too_long"):
        mtsics.decode(b"S" * (mtsics.MAX_LINE + 1))


def test_encode_round_trips() -> None:
    raw = mtsics.encode("XTR", "A", "17", mtsics.Quoted("pork belly"), mtsics.Quoted(""))
    line, used = mtsics.decode(raw)
    assert used == len(raw) and line is not None
    assert line.tokens == ("XTR", "A", "17", "pork belly", "")
    with pytest.raises(ValueError):
        mtsics.encode("two words")
    with pytest.raises(ValueError):
        mtsics.encode(mtsics.Quoted('a "quote"'))


@pytest.mark.parametrize(
    ("mg", "unit", "decimals", "text"),
    [
        (275_000, "kg", 3, "0.275"),
        (-5_000, "kg", 3, "-0.005"),
        (0, "kg", 3, "0.000"),
        (1_234_500, "g", 1, "1234.5"),
        (30_000_000, "kg", 3, "30.000"),
        (2_500, "g", 0, "3"),
    ],
)
def test_weights_are_formatted_and_parsed_in_integers(mg: int, unit: str, decimals: int, text: str) -> None:
    assert mtsics.format_decimal(mg, unit=unit, decimals=decimals) == text
    if decimals:
        assert mtsics.parse_weight(text, unit) == mg
    assert mtsics.encode_weight("S", "S", 275_000, unit="kg", decimals=3) == b"S S      0.275 kg\r\n"


@pytest.mark.parametrize("text", ["1,5", "0.0000001", "", "1e3", "--1"])
def test_bad_weights_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        mtsics.parse_weight(text, "kg")


@pytest.mark.parametrize(
    ("token", "kind", "value"),
    [
        ("17", "int", 17),
        ("1", "bool", True),
        ("0", "bool", False),
        ("20000.5", "float", 20000.5),
        ("x y", "str", "x y"),
    ],
)
def test_convert_and_render(token: str, kind, value) -> None:
    assert mtsics.convert(token, kind) == value
    rendered = mtsics.render(value, kind)
    assert (rendered.text if isinstance(rendered, mtsics.Quoted) else rendered) == token


@pytest.mark.parametrize(("token", "kind"), [("1.5", "int"), ("2", "bool"), ("nan", "float"), ("", "int")])
def test_convert_refuses_bad_values(token: str, kind) -> None:
    with pytest.raises(ValueError):
        mtsics.convert(token, kind)


@given(st.binary(max_size=700))
def test_fuzz_arbitrary_bytes_give_a_line_or_our_error(data: bytes) -> None:
    never_crashes(mtsics.decode, data)
    lines, _ = drain(mtsics.decode, data)
    assert all(line.tokens for line in lines)


# The whole-line pattern the codec used until it was found to backtrack exponentially (issue 10): the
# reference for the language the tokeniser must keep accepting, on lines short enough for it to finish.
_OLD_TOKEN_RE = re.compile(r'"([^"]*)"|([^\s"]+)')
_OLD_LINE_RE = re.compile(r'[ ]*(?:(?:"[^"]*"|[^\s"]+)[ ]*)*')


def _old_tokens(text: str) -> tuple[str, ...] | None:
    if _OLD_LINE_RE.fullmatch(text) is None:
        return None
    return tuple(q if q or bare == "" else bare for q, bare in _OLD_TOKEN_RE.findall(text))


@given(st.text(alphabet=' "\tAb.\x1c\x0b\r', max_size=14))
@example('A"b"')
@example('"" A')
@example(' "a b"  c ')
def test_tokeniser_accepts_exactly_the_old_language(text: str) -> None:
    assert mtsics.tokenise(text) == _old_tokens(text)


@pytest.mark.timeout(60)  # not a speed check: the old pattern would still be running in a million years
@pytest.mark.parametrize(
    "hostile",
    [
        b"S S " + b"A" * 193 + b"\t\r\n",  # a run of token characters, then white space that is not a space
        b"A " * 98 + b"A\t\r\n",  # many short tokens, then the same
        b'XSW A "' + b"B" * 191 + b"\r\n",  # an unterminated quote
    ],
)
def test_a_hostile_200_byte_line_is_rejected(hostile: bytes) -> None:
    assert len(hostile) == 200
    with pytest.raises(FrameError) as info:
        mtsics.decode(hostile + b"S S 1.000 kg\r\n")
    assert info.value.reason == "bad_syntax" and info.value.consumed == 200


@given(st.lists(st.from_regex(r"[A-Za-z0-9.+\-@]{1,12}", fullmatch=True), min_size=1, max_size=12))
def test_fuzz_round_trip_of_plain_tokens(tokens: list[str]) -> None:
    line, _ = mtsics.decode(mtsics.encode(*tokens))
    assert line is not None and list(line.tokens) == tokens
