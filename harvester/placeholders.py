"""The one owner of checkpoint placeholder syntax: secrets out of a saved link, and back in.

A placeholder is `{name}`; a `{` the server sent is written `{{`, so that text that merely looks
like a placeholder (a cursor `{secret:0}`) reads back exactly as the server sent it and never
turns into a secret on resume. Only the checkpoint fields that hold links and cursors go
through here: counts and digests are left as they are, whatever a short secret looks like.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

_PLACEHOLDER = re.compile(r"\{\{|\{([^{}]*)\}")


class UnknownPlaceholder(Exception):
    """A placeholder whose secret the registry does not know (any more)."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def encode(text: str, forms: Iterable[tuple[str, str]]) -> str:
    """`text` with each (secret form, placeholder name) as its placeholder, every `{` else
    doubled. Where forms overlap, the longest at the leftmost place wins."""
    names = {form: name for form, name in forms if form}
    if not names:
        return text.replace("{", "{{")
    pattern = re.compile("|".join(map(re.escape, sorted(names, key=len, reverse=True))))
    parts, end = [], 0
    for match in pattern.finditer(text):
        parts += [text[end : match.start()].replace("{", "{{"), f"{{{names[match.group()]}}}"]
        end = match.end()
    parts.append(text[end:].replace("{", "{{"))
    return "".join(parts)


def decode(text: str, value_of: Callable[[str], str | None]) -> str:
    """`text` as it was before `encode`, each placeholder's value from `value_of` (None: not
    known, UnknownPlaceholder). A lone `{` or `}` is taken as written."""

    def put_back(match: re.Match[str]) -> str:
        name = match.group(1)
        if name is None:
            return "{"
        value = value_of(name)
        if value is None:
            raise UnknownPlaceholder(name)
        return value

    return _PLACEHOLDER.sub(put_back, text)


# The fields of a chain's saved state that may hold a secret: the next page's request (a link
# or cursor from the server, the parameters and headers it goes with) and the first page's URL.
_LINK_FIELDS = ("next", "first_url")


def in_links(data: Any, change: Callable[[str], str]) -> Any:
    """`data` (a checkpoint, or its sink's state) with `change` applied to every string in its
    link fields; counts, digests and every other field as they are."""
    if not isinstance(data, dict):
        return data
    if "sink" in data:
        return {**data, "sink": in_links(data["sink"], change)}
    chains = data.get("chains")
    if not isinstance(chains, list):
        return data
    return {
        **data,
        "chains": [
            {k: _strings(v, change) if k in _LINK_FIELDS else v for k, v in c.items()}
            for c in chains
        ],
    }


def _strings(value: Any, change: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return change(value)
    if isinstance(value, dict):
        return {k: _strings(v, change) for k, v in value.items()}
    if isinstance(value, list):
        return [_strings(v, change) for v in value]
    return value
