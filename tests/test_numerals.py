"""ascii_int: whole numbers written as text, ASCII digits only."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harvester.numerals import ascii_int


@pytest.mark.parametrize(
    ("text", "signed", "expected"),
    [
        ("0", False, 0),
        ("0042", False, 42),
        ("12345678901234567890", False, 12345678901234567890),
        ("-5", True, -5),
        ("-5", False, None),
        ("--5", True, None),
        ("-", True, None),
        ("", False, None),
        ("¹", False, None),  # isdigit() says yes, int() says no
        ("٣", False, None),  # an Arabic-Indic digit: int() would take it
        (" 5", False, None),
        ("+5", True, None),
        ("5_0", False, None),
        ("1.0", False, None),
    ],
)
def test_ascii_int(text: str, signed: bool, expected: int | None) -> None:
    assert ascii_int(text, signed=signed) == expected


@given(st.text(max_size=8), st.booleans())
def test_ascii_int_never_raises_and_takes_only_ascii_digits(text: str, signed: bool) -> None:
    value = ascii_int(text, signed=signed)
    body = text[1:] if signed and text.startswith("-") else text
    assert (value is None) == (not body or any(c not in "0123456789" for c in body))
    if value is not None:
        assert str(value) == str(int(text))
