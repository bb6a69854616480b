"""Lint a converted program for documented device hazards, before anything runs.

Each rule is one module in :mod:`.rules` defining ``RULE`` (id, sources, what it
applies to, what it checks, what to do); :func:`all_rules` lists them. :func:`lint`
runs them over a :class:`LintProgram`; :func:`lint_package` lints a built
``.mlpackage``; :func:`findings_json` gives JSON-able findings. The plugin runs the
lint at bind time (``--coreml-lint=off|warn|error``); the console command
``coreml-parity-lint`` (``python -m pytest_coreml_parity.lint``) lints a package.
See docs/lint.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .program import LintProgram
from .registry import Finding, Hit, Rule, all_rules, rule
from .run import findings_json, lint

#: ``--coreml-lint`` values: off (no lint), warn (report), error (fail the test).
LINT_MODES: tuple[str, ...] = ("off", "warn", "error")


def lint_package(
    path: str | Path, *, compute_units: str = "ALL", precision: str | None = None, function: str | None = None
) -> list[Finding]:
    """Lint a built ``.mlpackage`` (no torch model: findings name ops, not torch lines)."""
    from .._coremltools import import_coremltools

    ct = import_coremltools()
    mlmodel: Any = ct.models.MLModel(str(path), skip_model_load=True, **({"function_name": function} if function else {}))
    program = LintProgram.from_mlmodel(mlmodel, precision=precision, compute_units=compute_units, function=function)
    return lint(program)


__all__ = [
    "LINT_MODES",
    "Finding",
    "Hit",
    "LintProgram",
    "Rule",
    "all_rules",
    "findings_json",
    "lint",
    "lint_package",
    "rule",
]
