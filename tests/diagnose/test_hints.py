"""Truthful hints and localization against torch, on real conversions.

Each case converts its model for real and diagnoses it the way the plugin's report
hook does (:func:`diagnose_failure`), then checks the hint's kind and wording: a
converter mismatch never advises FLOAT32; an fp16 overflow names the op and the
value past 65504; noise under a tight tolerance is not called an overflow.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
import torch
from torch import nn

from pytest_coreml_parity import messages
from pytest_coreml_parity.convert import ConversionOptions, convert_model
from pytest_coreml_parity.diagnose import (
    HintKind,
    Localization,
    choose_hint,
    diagnose_failure,
)
from pytest_coreml_parity.diagnose.torch_values import traced_values
from pytest_coreml_parity.verdict import Gates

from .models import complex_div, healthy, rmsnorm_zero_row

FLOAT32_ADVICE = "compute_precision=ct.precision.FLOAT32"


@dataclass(frozen=True)
class Converted:
    """A ModelUnderTest: a torch model and its real conversion, as the plugin holds them."""

    torch_model: Any
    example_inputs: tuple[Any, ...]
    options: ConversionOptions
    mlmodel: Any
    precision: str
    rtol: Any = None
    atol: Any = None
    search_fix: bool = False


def converted(model: nn.Module, examples: tuple[torch.Tensor, ...], precision: str) -> Converted:
    options = ConversionOptions(precision=precision)
    return Converted(model, examples, options, convert_model(model, examples, options), precision)


class TinyProducts(nn.Module):
    """Products of 1e-5 factors: 1e-10 is far below fp16's smallest subnormal (6e-8)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x * 1e-5 * 1e-5) * 1e10


class Affine(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 0.5 + 1.0


_CACHE: dict[str, Any] = {}


def _diagnosis(name: str) -> Any:
    """Each case's diagnosis, computed once per session (each one converts)."""
    if name not in _CACHE:
        if name == "rmsnorm_fp32":
            model, examples, bad = rmsnorm_zero_row()
            _CACHE[name] = diagnose_failure(converted(model, examples, "fp32"), bad)
        elif name == "rmsnorm_fp16":
            model, examples, bad = rmsnorm_zero_row()
            _CACHE[name] = diagnose_failure(converted(model, examples, "fp16"), bad)
        elif name == "complex_div":
            model, examples, bad = complex_div()
            _CACHE[name] = diagnose_failure(converted(model, examples, "fp16"), bad)
        elif name == "rounding_overflow":
            model, examples, bad = complex_div()
            row = torch.zeros(8, 4)
            row[7] = torch.tensor([13100.0, 0.0, 0.0, 5.0])  # the other rows are 0/0 on both sides
            _CACHE[name] = diagnose_failure(converted(model, examples, "fp16"), (row,))
        elif name == "noisy":
            model, examples, bad = healthy()
            tight = Gates(rtol=1e-4, atol=1e-5)  # as assert_parity(..., rtol=1e-4, atol=1e-5, scale_atol=0)
            _CACHE[name] = diagnose_failure(converted(model, examples, "fp16"), bad, gates=tight)
        elif name == "input_overflow":
            torch.manual_seed(0)
            x = torch.randn(4, 8)
            bad = x.clone()
            bad[0, 0] = 70000.0
            _CACHE[name] = diagnose_failure(converted(Affine().eval(), (x,), "fp16"), (bad,))
        elif name == "underflow":
            torch.manual_seed(0)
            x = torch.randn(4, 8)
            _CACHE[name] = diagnose_failure(converted(TinyProducts().eval(), (x,), "fp16"), (x,))
    return _CACHE[name]


def test_rmsnorm_at_fp32_names_the_lowered_ops_and_the_source_line() -> None:
    diagnosis = _diagnosis("rmsnorm_fp32")
    assert diagnosis is not None
    dep = diagnosis.localization.departure
    assert dep is not None and dep.torch_op == "rms_norm"
    assert len(dep.lowered_to) > 1 and any(op.startswith("real_div ") for op in dep.lowered_to)
    assert dep.first_non_finite is not None and dep.first_non_finite.startswith("real_div ")
    assert dep.coreml != dep.coreml and dep.torch == 0.0  # nan where torch gives 0
    source = dep.source or ""
    assert source.startswith("norm: RMSNorm.rms_norm, functional.py:")
    assert "called from models.py:" in source and "self.norm(self.proj(x) * x)" in source
    assert diagnosis.localization.compared >= 2  # the linear and the mul before it matched torch


def test_rmsnorm_at_fp32_is_a_converter_mismatch_without_float32_advice() -> None:
    diagnosis = _diagnosis("rmsnorm_fp32")
    assert diagnosis.hint.kind is HintKind.CONVERTER
    assert diagnosis.hint.text.startswith(messages.HINT_CONVERTER.split("{", 1)[0])
    assert "rms_norm" in diagnosis.hint.text
    text = diagnosis.text()
    assert "FLOAT32" not in text and messages.SEARCH_FIX_HINT not in text


def test_rmsnorm_at_fp16_blames_the_converter_not_fp16() -> None:
    diagnosis = _diagnosis("rmsnorm_fp16")
    loc = diagnosis.localization
    assert loc.fp32_passes is False
    assert loc.fp32_departure is not None and loc.fp32_departure.torch_op == "rms_norm"
    assert diagnosis.hint.kind is HintKind.CONVERTER
    assert "FLOAT32" not in diagnosis.text()


def test_complex_division_overflow_names_the_mul_and_the_value() -> None:
    diagnosis = _diagnosis("complex_div")
    hint = diagnosis.hint
    assert hint.kind is HintKind.OVERFLOW
    assert hint.text.startswith("hint: float16 overflow: mul op_")
    assert "computes 90000" in hint.text and "65504" in hint.text
    assert "den = rb * rb + ib * ib" in hint.text
    assert FLOAT32_ADVICE in hint.text and diagnosis.localization.fp32_passes is True
    dep = diagnosis.localization.departure
    assert dep is not None and dep.op_type == "mul" and dep.torch == 90000.0


def test_an_overflow_through_float16_rounding_is_an_overflow_not_precision_loss() -> None:
    """ra * ib = 13100 * 5 = 65500 passes in fp32; fp16 stores 13100 as 13104, and 65520
    rounds to inf. The all-zero rows' 0/0 nan, which fp32 shares, is not the first break."""
    diagnosis = _diagnosis("rounding_overflow")
    bad = diagnosis.localization.first_non_finite
    assert bad is not None and bad.op_type == "mul", bad
    assert diagnosis.hint.kind is HintKind.OVERFLOW
    assert "computes 65500 in fp32, just under the limit" in diagnosis.hint.text
    assert "(ra * rb + ia * ib) / den" in diagnosis.hint.text
    assert "precision loss" not in diagnosis.text()


def test_noise_under_a_tight_tolerance_is_precision_loss_not_overflow() -> None:
    diagnosis = _diagnosis("noisy")
    assert diagnosis is not None
    assert diagnosis.hint.kind is HintKind.PRECISION
    assert "overflow:" not in diagnosis.hint.text and "past 65504" not in diagnosis.text()
    dep = diagnosis.localization.departure
    assert dep is not None and dep.rtol == 1e-4 and dep.op_type == "linear"
    assert f"{dep.op_type} {dep.name}" in diagnosis.hint.text


def test_an_fp16_input_past_65504_overflows_on_the_way_in() -> None:
    diagnosis = _diagnosis("input_overflow")
    assert diagnosis.hint.kind is HintKind.INPUT_OVERFLOW
    assert diagnosis.hint.text == messages.HINT_INPUT_OVERFLOW.format(name="x", value=70000.0)
    assert messages.SEARCH_FIX_HINT not in diagnosis.text()


def test_tiny_products_are_an_underflow() -> None:
    diagnosis = _diagnosis("underflow")
    assert diagnosis.hint.kind is HintKind.UNDERFLOW
    under = diagnosis.localization.first_underflow
    assert under is not None and under.op_type == "mul" and under.underflowed == 32
    assert f"mul {under.name} holds 32 values" in diagnosis.hint.text
    assert "overflow" not in diagnosis.hint.text


def test_a_healthy_model_at_fp32_has_no_departure() -> None:
    model, examples, inputs = healthy()
    assert diagnose_failure(converted(model, examples, "fp32"), inputs) is None


def test_the_compression_hook_wins_over_fp16_kinds() -> None:
    loc = Localization("fp16", 0.01, 0, None, None, (), fp32_passes=True)
    assert choose_hint(loc).kind is HintKind.PRECISION
    hint = choose_hint(loc, compression="palettized weights of linear_0 lose 4%")
    assert hint.kind is HintKind.COMPRESSION
    assert hint.text == messages.HINT_COMPRESSION.format(detail="palettized weights of linear_0 lose 4%")


def test_traced_values_are_torch_eager_intermediates() -> None:
    model, examples, _ = complex_div()
    traced = torch.jit.trace(model, examples, check_trace=False)
    values = traced_values(traced, examples)
    _ra, _ia, rb, ib = examples[0].unbind(-1)
    assert values["den"] == pytest.approx((rb * rb + ib * ib).numpy())
    assert "8" in values and values["8"] == pytest.approx((rb * rb).numpy())


@pytest.mark.parametrize(
    ("case", "op_type", "what"),
    [
        ("large_activations", "linear", "computes "),  # the projection's fp32 value passes 65504
        ("transformer_block", "mul", "computes "),  # x * x
    ],
)
def test_known_fp16_breakages_are_overflows(localized: Any, case: str, op_type: str, what: str) -> None:
    loc = localized(case)
    hint = choose_hint(loc)
    assert hint.kind is HintKind.OVERFLOW and loc.fp32_passes is True
    assert hint.text.startswith(f"hint: float16 overflow: {op_type} {loc.first_non_finite.name} {what}")
    assert FLOAT32_ADVICE in hint.text


def test_a_fully_masked_row_under_float32_min_is_a_mask_hint_not_only_float32(localized: Any) -> None:
    """finfo(float32).min is -inf once fp16 stores it; the select reading it is the first
    non-finite op, and the softmax's fully masked row turns NaN: advise a finite fill."""
    loc = localized("masked_attention")
    hint = choose_hint(loc)
    assert hint.kind is HintKind.MASK and loc.fp32_passes is True
    assert loc.first_non_finite is not None and loc.first_non_finite.op_type == "select"
    assert loc.mask_non_finite and loc.masked_rows is not None
    assert loc.masked_rows.rows and set(loc.masked_rows.non_finite) == set(loc.masked_rows.rows)
    assert hint.text.startswith(
        "hint: fully masked rows: the attention mask's fill torch.finfo(torch.float32).min is -inf in fp16"
    )
    assert f"rows of softmax {loc.masked_rows.name} are fully masked" in hint.text
    assert "such as -3e4" in hint.text and hint.text.index("-3e4") < hint.text.index("FLOAT32")


class OutlierNorm(nn.Module):
    """An LLM-width RMSNorm; one outlier feature makes coremltools' eps * max|x|^2 matter."""

    def __init__(self) -> None:
        super().__init__()
        self.norm = nn.RMSNorm(4096, eps=1e-5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x) + 0.0


def test_rmsnorm_eps_inflation_at_fp32_is_localized_without_any_nan() -> None:
    """coremltools #2821 without a zero row: ~2% off at fp32, and nothing non-finite to find."""
    torch.manual_seed(0)
    x = torch.randn(2, 4096) * 0.01
    x[:, 0] = 100.0  # eps * max|x|^2 = 0.1 against mean(x^2) = 2.4
    diagnosis = diagnose_failure(converted(OutlierNorm().eval(), (x,), "fp32"), (x,))
    assert diagnosis is not None and diagnosis.localization.first_non_finite is None
    dep = diagnosis.localization.departure
    assert dep is not None and dep.torch_op == "rms_norm" and dep.first_non_finite is None
    assert abs(dep.coreml / dep.torch - 1.0) > 0.01  # about 2%
    assert diagnosis.hint.kind is HintKind.CONVERTER and "FLOAT32" not in diagnosis.text()
