"""Kubernetes label selectors over a fleet's target labels: ``region=eu,tier!=canary``.

The syntax of ``kubectl get -l``: requirements joined by commas, each one of ``key``, ``!key``,
``key=value`` (or ``==``), ``key!=value``, ``key in (a,b)`` and ``key notin (a,b)``. A ``!=`` or
``notin`` matches a target without the label, as in Kubernetes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Mapping

_NAME = r"[A-Za-z0-9]([-A-Za-z0-9_./]*[A-Za-z0-9])?"
_REQUIREMENT = re.compile(
    rf"^\s*(?:(?P<absent>!)\s*(?P<akey>{_NAME})"
    rf"|(?P<key>{_NAME})\s*(?:(?P<op>==|=|!=)\s*(?P<value>{_NAME})?"
    rf"|\s+(?P<setop>in|notin)\s*\((?P<values>[^()]*)\))?)\s*$"
)
LABEL_VALUE = re.compile(rf"^({_NAME})?$")
LABEL_KEY = re.compile(rf"^{_NAME}$")


class SelectorError(ValueError):
    """A selector that does not parse; the message names the requirement."""


@dataclass(frozen=True)
class Requirement:
    key: str
    operator: str  # exists, absent, in, notin (= is in with one value, != is notin)
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        if self.operator == "exists":
            return self.key in labels
        if self.operator == "absent":
            return self.key not in labels
        if self.operator == "in":
            return labels.get(self.key) in self.values
        return labels.get(self.key) not in self.values


@dataclass(frozen=True)
class Selector:
    text: str
    requirements: tuple[Requirement, ...]

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(requirement.matches(labels) for requirement in self.requirements)


def parse(text: str) -> Selector:
    """The selector ``text``; raises :class:`SelectorError` naming what does not parse."""
    parts = _split(text)
    if not any(part.strip() for part in parts):
        raise SelectorError("the selector is empty")
    return Selector(text, tuple(_requirement(part) for part in parts))


def _split(text: str) -> list[str]:
    """Commas separate requirements, except inside the parentheses of ``in (a,b)``."""
    parts, depth, current = [], 0, ""
    for char in text:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    return [*parts, current]


def _requirement(part: str) -> Requirement:
    match = _REQUIREMENT.match(part)
    if not match:
        raise SelectorError(f"cannot parse {part.strip()!r}: expected key, !key, key=value, key!=value, key in (a,b)")
    if match["absent"]:
        return Requirement(match["akey"], "absent")
    if match["op"]:
        return Requirement(match["key"], "in" if match["op"] != "!=" else "notin", frozenset({match["value"] or ""}))
    if match["setop"]:
        values = [value.strip() for value in match["values"].split(",")]
        bad = [value for value in values if not value or not LABEL_VALUE.match(value)]
        if bad:
            raise SelectorError(f"cannot parse {part.strip()!r}: a set needs label values, got {bad[0]!r}")
        return Requirement(match["key"], match["setop"], frozenset(values))
    return Requirement(match["key"], "exists")
