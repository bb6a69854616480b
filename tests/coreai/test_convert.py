"""Real conversions with coreai-torch, run on coreai-core's interpreter (in the worker)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from pytest_coreml_parity.coreai import ARITHMETIC_FP32_OPS, CoreAIProgram, convert_for_coreai
from pytest_coreml_parity.errors import (
    CacheEntryError,
    ConversionError,
    InputMismatchError,
    SettingError,
)

from .models import ComplexDiv, SmallCNN, TransformerBlock, TwoOutputs, seeded

pytestmark = [pytest.mark.coreai, pytest.mark.usefixtures("needs_coreai")]


def complex_inputs(a_scale: float, b_scale: float, n: int = 16, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=generator)
    x[:, :2] *= a_scale
    x[:, 2:] *= b_scale
    return x


def complex_div_fp16_reference(x: np.ndarray) -> np.ndarray:
    """The formula with every op rounded to fp16 (numpy rounds each float16 op correctly)."""
    ra, ia, rb, ib = (x[:, i].astype(np.float16) for i in range(4))
    with np.errstate(all="ignore"):
        den = rb * rb + ib * ib
        return np.stack([(ra * rb + ia * ib) / den, (ia * rb - ra * ib) / den], -1)


def test_complex_division_fp32_is_bit_identical(convert: Any) -> None:
    x = complex_inputs(300, 300)
    program = convert("complex_div", ComplexDiv(), (x,), "fp32")
    for inputs in (x, complex_inputs(1, 1, seed=1), complex_inputs(1e-3, 1e3, seed=2)):
        got = program(inputs)
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, ComplexDiv()(inputs).numpy())


def test_complex_division_fp16_overflows_like_per_op_fp16(convert: Any) -> None:
    x = complex_inputs(300, 300)
    program = convert("complex_div", ComplexDiv(), (x,), "fp16")
    got = program(x)
    assert got.dtype == np.float16 and program.inputs[0].dtype == "float16"
    assert np.isfinite(ComplexDiv()(x).numpy()).all()
    # |a|,|b| ~ 300: products ~ 9e4 overflow fp16's 65504 -> inf, and inf/inf -> nan.
    assert int(np.isnan(got).sum()) == 16  # of 32 outputs (16 complex numbers), this seed
    np.testing.assert_array_equal(got, complex_div_fp16_reference(x.numpy()))
    np.testing.assert_array_equal(program(x), got)  # deterministic


def test_complex_division_fp16_large_denominator_flushes_to_zero(convert: Any) -> None:
    generator = torch.Generator().manual_seed(3)
    x = torch.randn(16, 4, generator=generator)
    magnitude = 300 * (0.9 + 0.4 * torch.rand(16, 2, generator=generator))  # 270..430
    x[:, 2:] = torch.sign(x[:, 2:]) * magnitude  # |b| ~ 300, |a| ~ 1
    program = convert("complex_div", ComplexDiv(), (x,), "fp16")
    got = program(x)
    # only |b| ~ 300: the denominator overflows to inf, every finite numerator / inf is 0
    assert np.isfinite(got).all() and not got.any()
    assert np.abs(ComplexDiv()(x).numpy()).min() > 0  # torch fp32 is nonzero


def test_mixed_precision_keeps_arithmetic_fp32_and_is_finite(convert: Any) -> None:
    x = complex_inputs(300, 300)
    program = convert("complex_div", ComplexDiv(), (x,), "mixed", ARITHMETIC_FP32_OPS)
    assert program.precision == "mixed" and program.fp32_ops == ARITHMETIC_FP32_OPS
    got = program(x)
    assert np.isfinite(got).all()
    expected = ComplexDiv()(x.half().float()).numpy()  # inputs are fp16, arithmetic fp32
    np.testing.assert_allclose(got.astype(np.float32), expected, rtol=1e-3, atol=1e-4)


def test_fp16_with_fp32_ops_is_mixed(convert: Any) -> None:
    x = complex_inputs(300, 300)
    program = convert_for_coreai(ComplexDiv(), (x,), "fp16", frozenset({"aten.div.Tensor"}))
    assert program.precision == "mixed"
    types = {op.torch_target: op.op_type for op in program.ops if op.torch_target}
    assert types["aten.div.Tensor"].endswith("divide")


@pytest.mark.parametrize(
    ("name", "factory", "shape"),
    [("transformer", TransformerBlock, (2, 16, 64)), ("cnn", SmallCNN, (2, 3, 32, 32))],
)
def test_models_fp32_match_torch(
    convert: Any, name: str, factory: Any, shape: tuple[int, ...]
) -> None:
    model = seeded(factory())
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(1))
    program = convert(name, model, (x,), "fp32")
    with torch.no_grad():
        expected = model(x).numpy()
    got = program(x)
    assert got.shape == expected.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    ("name", "factory", "shape"),
    [("transformer", TransformerBlock, (2, 16, 64)), ("cnn", SmallCNN, (2, 3, 32, 32))],
)
def test_models_fp16_run_and_leave_the_torch_model_alone(
    convert: Any, name: str, factory: Any, shape: tuple[int, ...]
) -> None:
    model = seeded(factory())
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(1))
    program = convert(name, model, (x,), "fp16")
    after = model.state_dict()
    assert all(after[k].dtype == v.dtype and torch.equal(after[k], v) for k, v in before.items())
    with torch.no_grad():
        expected = model(x).numpy()
    got = program(x).astype(np.float32)
    assert np.isfinite(got).all()
    scale = np.abs(expected).max()
    assert np.abs(got - expected).max() < 0.02 * scale  # fp16 noise, not a wrong result


def test_output_structure_save_load_and_verification(tmp_path: Path) -> None:
    x = torch.randn(3, 4)
    program = convert_for_coreai(TwoOutputs(), (x,), "fp32", directory=tmp_path / "built")
    got = program(x)
    assert set(got) == {"pair", "rest"} and isinstance(got["pair"], tuple)
    assert isinstance(got["rest"], list)
    expected = TwoOutputs()(x)
    np.testing.assert_array_equal(got["pair"][0], expected["pair"][0].numpy())
    np.testing.assert_allclose(got["pair"][1], expected["pair"][1].numpy(), rtol=1e-6)
    np.testing.assert_array_equal(got["rest"][0], expected["rest"][0].numpy())

    copy = CoreAIProgram.load(program.save(tmp_path / "cache" / "entry").directory)
    assert copy.inputs == program.inputs and copy.outputs == program.outputs
    assert copy.ops == program.ops
    np.testing.assert_array_equal(copy(x)["rest"][0], got["rest"][0])

    (copy.asset_path / "main.mlirb").write_bytes(b"garbage")
    with pytest.raises(CacheEntryError, match="sha256"):
        CoreAIProgram.load(copy.directory)
    with pytest.raises(CacheEntryError, match=r"no coreai\.json"):
        CoreAIProgram.load(tmp_path / "nowhere")


def test_wrong_inputs_are_rejected_before_running(convert: Any) -> None:
    program = convert("complex_div", ComplexDiv(), (complex_inputs(300, 300),), "fp32")
    with pytest.raises(InputMismatchError, match=r"shape \(16, 4\)"):
        program(torch.zeros(8, 4))
    with pytest.raises(InputMismatchError, match="takes 1 input"):
        program(torch.zeros(16, 4), torch.zeros(16, 4))


class Unsupported(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = torch.fft.rfft(x).abs()  # coreai-torch 0.4.3: no _fft_r2c lowering
        return out


def test_conversion_failure_is_a_one_line_conversion_error() -> None:
    with pytest.raises(ConversionError) as info:
        convert_for_coreai(Unsupported(), (torch.randn(4, 8),), "fp32")
    summary = info.value.summary
    assert "\n" not in summary
    assert summary.startswith("Core AI conversion (fp32) failed in coreai_torch.TorchConverter: ")
    assert "aten._fft_r2c.default" in summary
    assert info.value.detail  # the traceback


@pytest.mark.parametrize(
    ("precision", "ops", "match"),
    [
        ("int8", None, "unknown Core AI precision"),
        ("mixed", None, "needs fp32_ops"),
        ("fp32", frozenset({"mul"}), "only applies"),
    ],
)
def test_bad_precision_settings(precision: str, ops: Any, match: str) -> None:
    with pytest.raises(SettingError, match=match):
        convert_for_coreai(ComplexDiv(), (torch.randn(2, 4),), precision, ops)
