"""coreml-triu-mask-nan (#2771), coreml-reciprocal-epsilon (#2773), coreml-rms-norm-eps (#2821):
each rule on a real conversion that has the lowering, and on a near miss that does not."""

from __future__ import annotations

import pytest
import torch

from .support import findings

X = torch.randn(16, 16)


class TriuOfInput(torch.nn.Module):
    """The mask from the input's shape: lowered to x - band_part(x) (NaN at run time)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + torch.triu(torch.full_like(x, float("-inf")), diagonal=1)


class TriuConstant(torch.nn.Module):
    """The mask from constants: folded (to all-NaN under torch.export, finite when traced)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-1]
        return x + torch.triu(torch.full((size, size), float("-inf")), diagonal=1)


class WhereMask(torch.nn.Module):
    """The near miss: the same causal mask without triu of infinities."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        keep = torch.ones_like(x).triu(1).bool()
        return x.masked_fill(keep, -1e4)


@pytest.mark.parametrize("export", [False, True], ids=["trace", "export"])
def test_triu_of_an_input_lowers_to_band_part_and_is_found(export: bool) -> None:
    found = findings("coreml-triu-mask-nan", TriuOfInput(), X, export=export)
    assert [f.op_type for f in found] == ["sub"], found
    assert "band_part" in found[0].detail


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # coremltools folding -inf - -inf
def test_triu_folded_by_torch_export_leaves_a_nan_constant_that_is_found() -> None:
    found = findings("coreml-triu-mask-nan", TriuConstant(), X, export=True)
    assert found and "NaN" in found[0].detail and found[0].op_type == "add"


def test_triu_folded_finite_by_the_trace_and_a_where_mask_are_quiet() -> None:
    assert findings("coreml-triu-mask-nan", TriuConstant(), X) == []
    assert findings("coreml-triu-mask-nan", WhereMask(), X) == []


class Reciprocal(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.reciprocal(x)


class Divide(torch.nn.Module):
    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return x / y


def test_reciprocal_lowers_to_inverse_with_an_epsilon() -> None:
    found = findings("coreml-reciprocal-epsilon", Reciprocal(), X)
    assert [f.op_type for f in found] == ["inverse"] and "1 / (x + 0.0001)" in found[0].detail
    assert "torch.reciprocal(x)" in str(found[0].torch_line)


def test_a_division_by_a_tensor_is_quiet() -> None:
    assert findings("coreml-reciprocal-epsilon", Divide(), X, X + 3) == []


class FunctionalRMSNorm(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.rms_norm(x, (16,), eps=1e-6)


class WrittenRMSNorm(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6)


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_rms_norm_lowering_is_found(precision: str) -> None:
    found = findings("coreml-rms-norm-eps", FunctionalRMSNorm(), X, precision=precision)
    assert [f.op_type for f in found] == ["add"] and "max|x|^2" in found[0].detail


def test_a_written_out_rms_norm_is_quiet() -> None:
    assert findings("coreml-rms-norm-eps", WrittenRMSNorm(), X) == []
