"""Validation errors in words a technician reads: each pattern the API checks, said as a rule.

Pydantic says ``String should match pattern '^[a-z0-9][a-z0-9-]{2,63}$'``: exact, and useless at a
market stall (and a terminal that renders markup eats the brackets). The API's 422s keep FastAPI's
shape and type; only ``msg`` of a pattern mismatch becomes the rule in words, with the value refused.
Every pattern in the published document has its words here (tests/device_registry/test_plain_errors.py
walks the document to keep it so); one without falls back to pydantic's text.
"""

from __future__ import annotations

from typing import Any, get_args

from pydantic import StringConstraints

from device_profiles.topics import DEVICE_ID_RE

from . import wire_types as w

_NO_CONTROL = "no control characters, not only spaces"
_VALUE_ERROR = "Value error, "  # pydantic's prefix to the message of a ValueError a validator raised


def _pattern(annotated: Any) -> str:
    """The pattern of an ``Annotated[str, StringConstraints(pattern=…), …]`` type of :mod:`.wire_types`."""
    for meta in get_args(annotated)[1:]:
        if isinstance(meta, StringConstraints) and isinstance(meta.pattern, str):
            return meta.pattern
    raise TypeError(f"{annotated} has no pattern")


RULES: dict[str, str] = {
    DEVICE_ID_RE.pattern: "a device id is 3-64 lower-case letters, digits and '-', "
    "the first a letter or digit (e.g. scale-0042)",
    _pattern(w.Slug): "an id is 1-64 lower-case letters, digits and '-', the first a letter or digit (e.g. futian-no1)",
    _pattern(w.StallCode): "a stall code is 1-32 letters, digits and '-', the first a letter or digit (e.g. A-017)",
    _pattern(w.Text): f"text is 1-200 characters ({_NO_CONTROL})",
    _pattern(w.Code): f"a code is 1-64 characters ({_NO_CONTROL})",
    _pattern(w.Plate): f"a licence plate is 2-16 characters ({_NO_CONTROL})",
    _pattern(w.Reason): f"a reason is 3-500 characters ({_NO_CONTROL})",
    _pattern(w.Uscc): "a unified social credit code is 18 characters: 2 letters or digits, 6 digits, "
    "then 10 letters or digits (no I, O, S, V or Z)",
    w.PRINTABLE: "printable text, without control characters",
    r"^[^\x00-\x1f\x7f]*$": "text without control characters",
    r"^[0-9a-f]{12}$": "a token id is 12 hex digits (0-9, a-f)",
    r"^[a-z]+\.[a-z0-9_]+$": "a channel is RECORD.FIELD in lower case (e.g. soil.moisture_pct)",
    r"^[0-9a-fA-F]{64}$": "a device key is 64 hex digits (32 bytes)",
}


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "…"


def plain(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """FastAPI's validation errors with each pattern mismatch's ``msg`` put as its rule in words, and the
    messages of the registry's own validators without pydantic's "Value error, " before them."""
    out = []
    for err in errors:
        rule = RULES.get(str((err.get("ctx") or {}).get("pattern")))
        msg = str(err.get("msg", ""))
        if err.get("type") == "string_pattern_mismatch" and rule is not None:
            out.append({**err, "msg": f"{rule}; not {_shown(err.get('input'))}"})
        elif err.get("type") == "value_error" and msg.startswith(_VALUE_ERROR):  # our own words: no prefix
            out.append({**err, "msg": msg.removeprefix(_VALUE_ERROR)})
        else:
            out.append(err)
    return out
