"""The unified social credit code (统一社会信用代码, GB 32100-2015) on a stall's business licence.

18 characters from a 31-character alphabet (digits and capitals without I, O, S, V, Z): registration
authority (1), organisation type (1), administrative division (6 digits), organisation code (9), and a check
character: the weighted sum of the first 17 values (weights 3^i mod 31) modulo 31, taken from 31.
"""

from __future__ import annotations

ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_VALUE = {c: i for i, c in enumerate(ALPHABET)}
WEIGHTS = tuple(pow(3, i, 31) for i in range(17))  # 1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28


def check_character(first17: str) -> str:
    """The 18th character for the first 17."""
    total = sum(_VALUE[c] * w for c, w in zip(first17, WEIGHTS, strict=True))
    return ALPHABET[(31 - total % 31) % 31]


def uscc_problem(code: str) -> str | None:
    """Why ``code`` is not a valid unified social credit code, or None if it is."""
    if len(code) != 18:
        return f"must be 18 characters, not {len(code)}"
    bad = sorted({c for c in code if c not in _VALUE})
    if bad:
        return f"contains {''.join(bad)!r}: only digits and capitals other than I, O, S, V, Z are used"
    if not code[2:8].isdigit():
        return "characters 3–8 (the administrative division code) must be digits"
    expected = check_character(code[:17])
    if code[17] != expected:
        return f"check character is {code[17]!r} but should be {expected!r}: a character was mistyped"
    return None


def is_valid_uscc(code: str) -> bool:
    return uscc_problem(code) is None
