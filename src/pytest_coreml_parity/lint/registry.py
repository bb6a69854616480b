"""The lint's rules table: what a rule is, what it finds, and where rules come from.

A rule is one module in :mod:`pytest_coreml_parity.lint.rules` that defines ``RULE``,
a :class:`Rule`. :func:`rules` imports every module of that package once, in name
order, so adding a rule is adding one file (docs/lint.md, "Adding a rule").
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .program import LintProgram

#: The stacks a rule can read: the Core ML program (MIL) or the Core AI one.
STACKS: tuple[str, ...] = ("coreml", "coreai")


@dataclass(frozen=True)
class Hit:
    """What a rule's check found: the op (or torch node) and what is wrong with it.

    ``op`` is a MIL op name (its torch line is looked up through the program's torch
    scopes) or, with ``torch_line`` given, a torch node whose line the rule knows.
    """

    op: str
    op_type: str
    detail: str
    torch_line: str | None = None


@dataclass(frozen=True)
class Rule:
    """A documented device hazard, and how to find it in a program before it runs."""

    #: Stable id (``coreml-rms-norm-eps``): what ``--coreml-lint`` reports and docs list.
    id: str
    #: One line: the hazard.
    title: str
    #: Where it is documented (issue or document links).
    sources: tuple[str, ...]
    #: The versions, OS and compute units it applies to.
    applies: str
    #: What the check looks for in the program.
    checks: str
    #: What to do about it.
    advice: str
    #: ``check(program) -> hits``; called only when ``stack`` is the program's stack.
    check: Callable[[LintProgram], Iterable[Hit]] = field(repr=False, compare=False)
    stack: str = "coreml"

    def __post_init__(self) -> None:
        if self.stack not in STACKS:
            raise ValueError(f"lint rule {self.id}: stack {self.stack!r} is not one of {STACKS}")


@dataclass(frozen=True)
class Finding:
    """One hit of one rule in one program: JSON-able through :meth:`to_dict`."""

    rule: Rule
    op: str
    op_type: str
    detail: str
    #: The torch source line the op came from, when coremltools (or the trace) kept it.
    torch_line: str | None

    def text(self) -> str:
        where = f"\n    torch: {self.torch_line}" if self.torch_line else ""
        return (
            f"[{self.rule.id}] {self.rule.title}\n"
            f"    op: {self.op_type} {self.op}: {self.detail}{where}\n"
            f"    applies to: {self.rule.applies}\n"
            f"    do: {self.rule.advice}\n"
            f"    source: {', '.join(self.rule.sources)}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule.id,
            "title": self.rule.title,
            "sources": list(self.rule.sources),
            "applies": self.rule.applies,
            "op": self.op,
            "op_type": self.op_type,
            "detail": self.detail,
            "torch_line": self.torch_line,
            "advice": self.rule.advice,
        }


@lru_cache(maxsize=1)
def all_rules() -> tuple[Rule, ...]:
    """Every registered rule, by module name; a module without ``RULE`` is an error."""
    package = importlib.import_module(f"{__package__}.rules")
    found: list[Rule] = []
    seen: dict[str, str] = {}
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        rule = getattr(module, "RULE", None)
        if not isinstance(rule, Rule):
            raise TypeError(f"lint rule module {module.__name__} defines no RULE = Rule(...)")
        if rule.id in seen:
            raise ValueError(f"lint rule id {rule.id!r} is defined twice: {seen[rule.id]} and {module.__name__}")
        seen[rule.id] = module.__name__
        found.append(rule)
    return tuple(found)


def rule(rule_id: str) -> Rule:
    """The registered rule ``rule_id``; ``KeyError`` naming the known ids."""
    for candidate in all_rules():
        if candidate.id == rule_id:
            return candidate
    raise KeyError(f"no lint rule {rule_id!r}; known: {', '.join(r.id for r in all_rules())}")


__all__ = ["STACKS", "Finding", "Hit", "Rule", "all_rules", "rule"]
