"""The unified social credit code's check character catches every single mistyped character."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from device_registry.schemas import StallIn
from device_registry.uscc import ALPHABET, check_character, is_valid_uscc, uscc_problem
from tests.support.registry import VALID_LICENCES


@pytest.mark.parametrize("code", VALID_LICENCES)
def test_published_codes_are_valid(code: str) -> None:
    assert uscc_problem(code) is None


@given(
    st.sampled_from(VALID_LICENCES),
    st.integers(min_value=0, max_value=17),
    st.sampled_from(ALPHABET),
)
def test_any_single_substitution_is_caught(code: str, position: int, char: str) -> None:
    mutated = code[:position] + char + code[position + 1 :]
    assert is_valid_uscc(mutated) == (mutated == code)


@given(st.text(alphabet="0123456789", min_size=6, max_size=6), st.text(alphabet=ALPHABET, min_size=9, max_size=9))
def test_a_computed_check_character_makes_a_valid_code(division: str, organisation: str) -> None:
    first17 = "91" + division + organisation
    assert is_valid_uscc(first17 + check_character(first17))


@pytest.mark.parametrize(
    ("code", "why"),
    [
        ("91350100M000100Y4", "18 characters"),
        ("91350100M000100I43", "'I'"),
        ("91350100M000100Y44", "check character is '4' but should be '3'"),
        ("91A50100M000100Y43", "administrative division"),
    ],
)
def test_problems_are_explained(code: str, why: str) -> None:
    problem = uscc_problem(code)
    assert problem is not None and why in problem


def test_the_schema_normalises_case_and_refuses_bad_codes() -> None:
    stall = StallIn(market_id="m1", code="A-1", vendor="v", business_licence=" 91350100m000100y43 ")
    assert stall.business_licence == "91350100M000100Y43"
    with pytest.raises(ValidationError, match="mistyped"):
        StallIn(market_id="m1", code="A-1", vendor="v", business_licence="91350100M000100Y44")
