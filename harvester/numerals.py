"""Whole numbers written as text by a server or a user: ASCII digits and nothing else."""

from __future__ import annotations

__all__ = ["ascii_int"]


def ascii_int(text: str, *, signed: bool = False) -> int | None:
    """`text` as an int if it is ASCII digits only (after one leading "-" when `signed`), else None.

    str.isdigit() alone takes "¹" and other Unicode digits that int() refuses, and int() alone
    takes " 5", "+5" and "5_0", which no header or query string means as a number.
    """
    digits = text[1:] if signed and text.startswith("-") else text
    if not (digits.isascii() and digits.isdigit()):
        return None
    return int(text)
