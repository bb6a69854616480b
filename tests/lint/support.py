"""Real conversions for the lint tests: capture, convert with coremltools, lint the result."""

from __future__ import annotations

from typing import Any

import torch

from pytest_coreml_parity.convert import ConversionOptions, capture, convert_captured
from pytest_coreml_parity.lint import Finding, LintProgram, lint, rule


def converted(
    model: torch.nn.Module, *examples: torch.Tensor, precision: str = "fp16", export: bool = False, target: str = "iOS16"
) -> tuple[Any, Any]:
    """(MLModel, captured torch graph) of a real conversion."""
    options = ConversionOptions(precision=precision, use_export=export, target=target)
    captured = capture(model.eval(), examples, options)
    return convert_captured(captured, options), captured.source


def findings(
    rule_id: str,
    model: torch.nn.Module,
    *examples: torch.Tensor,
    precision: str = "fp16",
    export: bool = False,
    target: str = "iOS16",
    compute_units: str = "ALL",
) -> list[Finding]:
    """The findings of rule ``rule_id`` alone on the real conversion of ``model``."""
    mlmodel, source = converted(model, *examples, precision=precision, export=export, target=target)
    program = LintProgram.from_mlmodel(
        mlmodel, precision=precision, compute_units=compute_units, torch_source=source,
        root_class=type(model).__name__,
    )  # fmt: skip
    return lint(program, [rule(rule_id)])


def exported_findings(
    rule_id: str, model: torch.nn.Module, *examples: torch.Tensor, precision: str = "fp16", compute_units: str = "ALL"
) -> list[Finding]:
    """A coreai rule on the program the coreai stack converts (its torch.export)."""
    from pytest_coreml_parity.coreai.convert import export_for_coreai

    program = LintProgram(
        stack="coreai", precision=precision, compute_units=compute_units,
        torch_source=export_for_coreai(model.eval(), examples),
    )  # fmt: skip
    return lint(program, [rule(rule_id)])
