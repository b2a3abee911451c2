"""A config as a person would write it: sections of keys, each with a one-line comment saying
what was observed, and commented-out suggestions the user may take up."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml


@dataclass(frozen=True)
class Key:
    name: str
    value: Any  # a scalar, or a flat mapping (written as one nested block)
    note: str = ""


@dataclass(frozen=True)
class Note:
    """A comment line inside a section: a default that fits, or what init saw."""

    text: str


@dataclass(frozen=True)
class Commented:
    """A suggestion, written commented out: `name:` and its keys, each with its comment."""

    intro: str
    name: str
    values: dict[str, Any]
    notes: dict[str, str] = field(default_factory=dict)


@dataclass
class Section:
    name: str
    lines: list[Key | Note | Commented] = field(default_factory=list)

    def key(self, name: str, value: Any, note: str = "") -> None:
        self.lines.append(Key(name, value, note))

    def note(self, text: str) -> None:
        self.lines.append(Note(text))

    @property
    def has_keys(self) -> bool:
        return any(isinstance(line, Key) for line in self.lines)


@dataclass
class Document:
    header: list[str]
    sections: list[Section]
    suggestions: list[Commented] = field(default_factory=list)


def scalar(value: Any) -> str:
    """`value` as a YAML scalar, quoted only where YAML needs it; non-ASCII text as it is where
    it reads back the same, escaped where it would not (PyYAML writes a NEL or a line
    separator raw inside quotes, and a reader folds it into a space)."""
    for readable in (True, False):
        dumped = yaml.safe_dump(
            value, default_flow_style=True, allow_unicode=readable, width=1 << 30
        )
        text = dumped.removesuffix("\n").removesuffix("\n...").strip()
        if yaml.safe_load(text) == value:
            break
    return text


def render(document: Document) -> str:
    out = [f"# {line}" if line else "#" for line in document.header]
    for section in document.sections:
        if not section.has_keys:  # only notes: the defaults fit, say so at the top level
            out += [
                f"# {section.name}: {line.text}" for line in section.lines if isinstance(line, Note)
            ]
            continue
        out.append(f"{section.name}:")
        for line in section.lines:
            out += _lines(line, "  ")
    for suggestion in document.suggestions:
        out += _lines(suggestion, "")
    return "\n".join(out) + "\n"


def _lines(line: Key | Note | Commented, indent: str) -> list[str]:
    if isinstance(line, Note):
        return [f"{indent}# {line.text}"]
    if isinstance(line, Commented):
        block = [f"{indent}# {line.intro}", f"{indent}# {line.name}:"]
        for name, value in line.values.items():
            note = f"  # {line.notes[name]}" if name in line.notes else ""
            block.append(f"{indent}#   {name}: {scalar(value)}{note}")
        return block
    comment = f"  # {line.note}" if line.note else ""
    if isinstance(line.value, dict):
        if not line.value:
            return [f"{indent}{line.name}: {{}}{comment}"]
        nested = [f"{indent}{line.name}:{comment}"]
        for name, value in line.value.items():
            nested.append(f"{indent}  {scalar(name)}: {scalar(value)}")
        return nested
    return [f"{indent}{line.name}: {scalar(line.value)}{comment}"]
