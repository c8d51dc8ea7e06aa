"""The value types of the API's bodies and query parameters, each with a JSON Schema that says exactly what
it accepts: a value the published schema allows is not refused for its type, and one it forbids is not
taken. That rules out pydantic's lax conversions (``"5"`` for an integer, ``0`` or ``"0"`` for a date,
``"1.5"`` for a number) and states in a pattern what stripping surrounding whitespace lets through.

What no JSON Schema can say stays a rule of the model with its own 422: the check character of a unified
social credit code (announced as ``format: uscc``), a limit's ``low`` below its ``high``, a verification
of a device whose profile has no metrology.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, StringConstraints, WithJsonSchema

from device_profiles import builtin_profiles, did_you_mean

from .uscc import uscc_problem

# what str.strip() removes (Python's whitespace: tabs and line breaks among them), and control characters
_SPACE = r"\t\n\x0b\x0c\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
_CONTROL = r"\x00-\x1f\x7f"
PRINTABLE = rf"^[^{_CONTROL}]+$"


def stripped_text_pattern(min_length: int, max_length: int) -> str:
    """A pattern for printable text whose surrounding whitespace is stripped: once stripped it is
    ``min_length`` to ``max_length`` characters (so the raw value has no upper length of its own)."""
    edge, inner = f"[^{_CONTROL}{_SPACE}]", f"[^{_CONTROL}]"
    middle = f"{edge}{inner}{{{max(min_length - 2, 0)},{max_length - 2}}}{edge}"
    core = f"(?:{edge}|{middle})" if min_length <= 1 else middle
    return f"^[{_SPACE}]*{core}[{_SPACE}]*$"


def _strip(value: str) -> str:
    return value.strip()


Text = Annotated[str, StringConstraints(pattern=stripped_text_pattern(1, 200)), AfterValidator(_strip)]
Code = Annotated[str, StringConstraints(pattern=stripped_text_pattern(1, 64)), AfterValidator(_strip)]
Plate = Annotated[str, StringConstraints(pattern=stripped_text_pattern(2, 16)), AfterValidator(_strip)]
Reason = Annotated[str, StringConstraints(pattern=stripped_text_pattern(3, 500)), AfterValidator(_strip)]
Slug = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{0,63}$")]
StallCode = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9-]{0,31}$")]


def _uscc(value: str) -> str:
    problem = uscc_problem(value)
    if problem:
        raise ValueError(f"not a unified social credit code: {problem}")
    return value


_USCC_CHAR = "[0-9A-HJ-NPQRTUWXYa-hj-npqrtuwxy]"  # any case: upper-cased when read
USCC_FORMAT = "uscc"  # GB 32100-2015: 18 characters, the last a check character over the others
Uscc = Annotated[
    str,
    StringConstraints(pattern=rf"^[{_SPACE}]*{_USCC_CHAR}{{2}}[0-9]{{6}}{_USCC_CHAR}{{10}}[{_SPACE}]*$"),
    AfterValidator(lambda v: _uscc(v.strip().upper())),
    Field(json_schema_extra={"format": USCC_FORMAT}),
]


def _known_profile(value: str) -> str:
    if value not in builtin_profiles():
        hint = did_you_mean(value, builtin_profiles())
        raise ValueError(f"profile {value!r} is not a shipped profile{hint} (see `zhijian profiles list`)")
    return value


def _profile_enum(schema: dict[str, Any]) -> None:
    schema["enum"] = sorted(builtin_profiles())  # read when the document is made, not at import


ProfileId = Annotated[str, AfterValidator(_known_profile), Field(json_schema_extra=_profile_enum)]


def _strict(kind: type | tuple[type, ...], name: str) -> BeforeValidator:
    def check(value: Any) -> Any:
        # bool is an int in Python; JSON keeps them apart, and so does the schema
        if isinstance(value, bool) or not isinstance(value, kind):
            raise ValueError(f"Input should be {name}")
        return value

    return BeforeValidator(check)


# Annotated[float, Field(bounds…), JSON_NUMBER]: a finite JSON number (an integer too), never a string
JSON_NUMBER = _strict((int, float), "a number")


def _integer(value: Any) -> Any:
    # JSON Schema's integer is any number without a fraction: 369.0 is one, "369" and 369.5 are not
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError("Input should be an integer")
    return value


# Annotated[int, Field(bounds…), JSON_INTEGER]: a JSON integer, never a string or a fraction
JSON_INTEGER = BeforeValidator(_integer)
Number = Annotated[float, Field(allow_inf_nan=False), JSON_NUMBER]
Int32 = Annotated[int, Field(ge=0, le=2**31 - 1), JSON_INTEGER]

_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


def _iso_day(value: Any) -> Any:
    if isinstance(value, dt.date):
        return value
    if not isinstance(value, str) or not _DAY.fullmatch(value):
        raise ValueError("Input should be a date as YYYY-MM-DD")
    return value


def _years(pattern: str, words: str) -> tuple[AfterValidator, Any]:
    year = re.compile(pattern)

    def check(value: dt.date) -> dt.date:
        if not year.fullmatch(value.isoformat()):
            raise ValueError(f"the date must be {words}")
        return value

    return AfterValidator(check), Field(json_schema_extra={"pattern": pattern})


_ISO_DAY = BeforeValidator(_iso_day)
_IN_2000S = _years(r"^20[0-9]{2}-[0-9]{2}-[0-9]{2}$", "from 2000-01-01 to 2099-12-31")
_IN_2000S_OR_2100 = _years(r"^(?:20[0-9]{2}|2100)-[0-9]{2}-[0-9]{2}$", "from 2000-01-01 to 2100-12-31")
# a calendar date written YYYY-MM-DD (RFC 3339 full-date): never a timestamp
Day = Annotated[dt.date, _ISO_DAY]
DayIn2000s = Annotated[dt.date, _ISO_DAY, *_IN_2000S]
DayIn2000sOr2100 = Annotated[dt.date, _ISO_DAY, *_IN_2000S_OR_2100]


_DATE_TIME = re.compile(
    r"(\d{4}-\d{2}-\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})",
)


def _rfc3339(value: Any) -> dt.datetime:
    """An RFC 3339 date-time (zone required), in UTC; beyond what Python's datetime holds it is clamped."""
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return value.astimezone(dt.UTC)
    match = _DATE_TIME.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise ValueError("Input should be an RFC 3339 date-time with a zone, e.g. 2026-01-31T08:00:00Z")
    day, hour, minute, second, fraction, zone = match.groups()
    leap = second == "60"  # a leap second: the last instant of its minute
    text = f"{day}T{hour}:{minute}:{'59' if leap else second}{(fraction or '')[:7]}"
    try:
        naive = dt.datetime.fromisoformat(text)
        offset = dt.timedelta(0) if zone in "Zz" else dt.datetime.strptime(zone, "%z").utcoffset()
    except ValueError as exc:
        raise ValueError(f"Input should be a valid date-time: {exc}") from exc
    if leap:
        naive = naive.replace(microsecond=999_999)
    assert offset is not None
    try:
        return (naive - offset).replace(tzinfo=dt.UTC)
    except OverflowError:
        return (dt.datetime.min if offset > dt.timedelta(0) else dt.datetime.max).replace(tzinfo=dt.UTC)


Instant = Annotated[dt.datetime, BeforeValidator(_rfc3339), WithJsonSchema({"type": "string", "format": "date-time"})]
