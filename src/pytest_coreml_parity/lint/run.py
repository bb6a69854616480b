"""Run the registered rules over one program; findings as objects or JSON-able dicts."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from .program import LintProgram
from .registry import Finding, Rule, all_rules


def lint(program: LintProgram, selected: Sequence[Rule] | None = None) -> list[Finding]:
    """Every finding of the rules (default: all registered) on ``program``, rule by rule.

    A rule whose check raises is a bug in that rule: the error names it.
    """
    found: list[Finding] = []
    for rule in selected if selected is not None else all_rules():
        if rule.stack != program.stack:
            continue
        try:
            hits = list(rule.check(program))
        except Exception as exc:
            raise RuntimeError(f"lint rule {rule.id} failed: {type(exc).__name__}: {exc}") from exc
        for hit in hits:
            line = hit.torch_line if hit.torch_line is not None else program.torch_line(hit.op)
            found.append(Finding(rule, hit.op, hit.op_type, hit.detail, line))
    return found


def findings_json(findings: Iterable[Finding]) -> list[dict[str, Any]]:
    """The findings as JSON-able dicts (what a JSON report embeds)."""
    return [f.to_dict() for f in findings]


__all__ = ["findings_json", "lint"]
