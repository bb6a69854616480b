"""Per-op values from the interpreter: record() and first_nonfinite_op()."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from pytest_coreml_parity.coreai import first_nonfinite_op, record
from pytest_coreml_parity.coreai.convert import _op_types

from .models import ComplexDiv
from .test_convert import complex_inputs

pytestmark = [pytest.mark.coreai, pytest.mark.usefixtures("needs_coreai")]

DEN_LINE = "den = rb * rb + ib * ib"


def models_line(text: str) -> str:
    import inspect

    from . import models

    lines, start = inspect.getsourcelines(models.ComplexDiv.forward)
    number = next(start + i for i, line in enumerate(lines) if text in line)
    return f"{models.__file__}:{number}"


def test_op_table_from_debug_info(convert: Any) -> None:
    x = complex_inputs(300, 300)
    program = convert("complex_div", ComplexDiv(), (x,), "fp16")
    by_node = {op.torch_node: op for op in program.ops if op.torch_node}
    assert by_node["mul"].op_type == "coreai.decomposable.broadcasting_mul"
    assert by_node["mul"].torch_target == "aten.mul.Tensor"
    assert by_node["mul"].source_line == models_line(DEN_LINE)
    assert by_node["div"].op_type == "coreai.decomposable.broadcasting_divide"


def test_private_op_type_lookup_still_works() -> None:
    """coreai-torch's private ``_build_coreai_op_map``, which _op_types wraps, still exists."""
    import coreai_torch

    from pytest_coreml_parity.coreai.availability import quiet_coreai_warnings

    with quiet_coreai_warnings():
        ep = torch.export.export(ComplexDiv(), (torch.randn(2, 4),))
        ep = ep.run_decompositions(coreai_torch.get_decomp_table())
        program = coreai_torch.TorchConverter().add_exported_program(ep).to_coreai()
    types = _op_types(program)
    assert "coreai.decomposable.broadcasting_divide" in types.values()
    assert all(isinstance(key, int) for key in types)


def test_first_nonfinite_op_is_the_overflowing_square(convert: Any) -> None:
    x = complex_inputs(300, 300)
    program = convert("complex_div", ComplexDiv(), (x,), "fp16")
    values = record(program, (x,))
    assert [v.op_id for v in values] == sorted(v.op_id for v in values)
    first = first_nonfinite_op(values)
    assert first is not None
    assert first.op_type == "coreai.decomposable.broadcasting_mul"
    assert first.torch_target == "aten.mul.Tensor"
    assert first.source_line == models_line(DEN_LINE)
    assert np.isinf(first.value).any()
    rb = x.numpy()[:, 2].astype(np.float16)
    with np.errstate(over="ignore"):
        np.testing.assert_array_equal(first.value, rb * rb)
    # the recorded last op is the program's output, bit for bit
    np.testing.assert_array_equal(values[-1].value, program(x), strict=False)


def test_record_fp32_is_finite_and_matches_torch_per_op(convert: Any) -> None:
    x = complex_inputs(300, 300)
    program = convert("complex_div", ComplexDiv(), (x,), "fp32")
    values = record(program, {"a": x})
    assert first_nonfinite_op(values) is None
    by_name = {v.name: v for v in values}
    ra, rb = x[:, 0], x[:, 2]
    np.testing.assert_array_equal(by_name["mul"].value, (rb * rb).numpy())
    np.testing.assert_array_equal(by_name["mul_2"].value, (ra * rb).numpy())
