"""Diagnosis on the coreai target: the first non-finite op and the ignored_ops search (real runs)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from pytest_coreml_parity.diagnose.coreai import first_nonfinite, search_coreai_fix
from pytest_coreml_parity.verdict import judge, preset

from .models import ComplexDiv

pytestmark = [pytest.mark.coreai, pytest.mark.usefixtures("needs_coreai")]

EXAMPLE = (torch.rand(8, 4, generator=torch.Generator().manual_seed(0)) + 0.5,)
LARGE = 300.0 * (torch.rand(8, 4, generator=torch.Generator().manual_seed(1)) + 0.5)


def test_first_nonfinite_names_the_square_and_its_line(convert: Any) -> None:
    program = convert("complex_div_example", ComplexDiv(), EXAMPLE, "fp16")
    found = first_nonfinite(program, (LARGE.numpy(),))
    assert found is not None
    assert (found.name, found.torch_target) == ("mul", "aten.mul.Tensor")
    assert found.code == "den = rb * rb + ib * ib"
    assert (found.count, found.size) == (8, 8)
    assert first_nonfinite(program, (EXAMPLE[0].numpy(),)) is None


def test_skipping_casts_moves_past_a_boundary_cast_to_the_consumer(convert: Any) -> None:
    """With mul in fp32, its 9e4 output overflows in the cast back to fp16; the op to keep
    next is the add that reads it, not the cast."""
    # (the shared ``convert`` cache is keyed by name and precision: a name per fp32_ops)
    program = convert("complex_div_mul_fp32", ComplexDiv(), EXAMPLE, "mixed", frozenset({"mul"}))
    found = first_nonfinite(program, (LARGE.numpy(),), skip_casts=True)
    assert found is not None and found.torch_target is not None
    assert found.torch_target.split(".")[1] not in {"_to_copy", "mul"}


def test_search_reports_a_spent_budget_and_what_it_tried(convert: Any) -> None:
    program = convert("complex_div_example", ComplexDiv(), EXAMPLE, "fp16")
    start = first_nonfinite(program, (LARGE.numpy(),))
    assert start is not None
    sets = [("failing inputs", (LARGE.numpy(),))]
    fix = search_coreai_fix(ComplexDiv(), EXAMPLE, start, sets, gates=preset("fp16"), budget=1)
    assert not fix.found and fix.tried == ("mul",) and fix.conversions == 1
    assert "budget of 1 conversions spent" in fix.text()


def test_search_finds_the_arithmetic_and_verifies_it(convert: Any) -> None:
    program = convert("complex_div_example", ComplexDiv(), EXAMPLE, "fp16")
    start = first_nonfinite(program, (LARGE.numpy(),))
    assert start is not None
    sets = [("failing inputs", (LARGE.numpy(),)), ("example inputs", (EXAMPLE[0].numpy(),))]
    fix = search_coreai_fix(ComplexDiv(), EXAMPLE, start, sets, gates=preset("fp16"))
    assert fix.fp32_ops == frozenset({"mul", "add", "sub", "div"})
    fixed = convert("complex_div_arithmetic_fp32", ComplexDiv(), EXAMPLE, "mixed", fix.fp32_ops)
    with np.errstate(over="ignore"):
        got = fixed(LARGE).astype(np.float32)
    assert judge(got, ComplexDiv()(LARGE).numpy(), preset("fp16")).passed
