"""Characterization: how coreai-core's interpreter accumulates inside fp16 programs.

batch_matmul (what matmul, linear and einsum lower to) accumulates in fp16, left to right
over k, rounding each product to fp16 and then each partial sum to fp16 (no fused
multiply-add), starting from 0; linear adds its bias afterwards as a separate fp16 add.
reduce_sum and conv accumulate wider. If one of these fails after an upgrade, the
interpreter changed: update docs/coreai.md and the emulator's accumulation profile.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from .models import Einsum, MatMul

pytestmark = [pytest.mark.coreai, pytest.mark.usefixtures("needs_coreai")]


def sequential_fp16(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a @ b with acc = fp16(acc + fp16(a[i,k] * b[k,j])) for k = 0, 1, ... from acc = 0."""
    a16, b16 = a.astype(np.float16), b.astype(np.float16)
    acc = np.zeros((a.shape[0], b.shape[1]), np.float16)
    with np.errstate(over="ignore", invalid="ignore"):
        for k in range(a.shape[1]):
            acc = acc + a16[:, k : k + 1] * b16[k : k + 1, :]  # float16 op: rounded each step
    return acc


class Sum(torch.nn.Module):
    def forward(self, a: torch.Tensor) -> torch.Tensor:
        return a.sum(-1)


class Conv(torch.nn.Module):
    def forward(self, a: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.conv1d(a, w)


class Linear(torch.nn.Module):
    def __init__(self, weight: torch.Tensor, bias: torch.Tensor) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(weight.shape[1], weight.shape[0])
        with torch.no_grad():
            self.linear.weight.copy_(weight)
            self.linear.bias.copy_(bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.linear(x)
        return out


@pytest.mark.parametrize("model", [MatMul(), Einsum()], ids=["matmul", "einsum"])
def test_matmul_sums_4096_ones_to_2048(convert: Any, model: torch.nn.Module) -> None:
    a, b = torch.ones(1, 4096), torch.ones(4096, 1)
    program = convert(f"{type(model).__name__}-4096", model, (a, b), "fp16")
    assert float(program(a, b)[0, 0]) == 2048.0  # 2048 + 1 rounds back to 2048 in fp16
    assert float(program(a, b).astype(np.float32)[0, 0]) != float(a.sum())


@pytest.mark.parametrize(
    ("values", "scale", "expected"),
    [
        ([2048, 1, 1, 1, 1], 1.0, 2048.0),  # each +1 is lost: order matters
        ([1, 1, 1, 1, 2048], 1.0, 2052.0),  # small terms first survive
        ([250, 250, -250], 250.0, float("inf")),  # 62500 + 62500 overflows before the -62500
    ],
)
def test_matmul_accumulates_left_to_right_in_fp16(
    convert: Any, values: list[float], scale: float, expected: float
) -> None:
    a = torch.tensor([values], dtype=torch.float32)
    b = torch.full((len(values), 1), scale)
    program = convert(f"matmul-{len(values)}", MatMul(), (a, b), "fp16")
    got = float(program(a, b)[0, 0])
    assert got == expected
    np.testing.assert_array_equal(program(a, b), sequential_fp16(a.numpy(), b.numpy()))


@pytest.mark.parametrize("model", [MatMul(), Einsum()], ids=["matmul", "einsum"])
def test_matmul_is_bit_identical_to_sequential_fp16(convert: Any, model: torch.nn.Module) -> None:
    rng = np.random.default_rng(0)
    a = (rng.standard_normal((4, 64)) * 4).astype(np.float32)
    b = (rng.standard_normal((64, 3)) * 4).astype(np.float32)
    program = convert(
        f"{type(model).__name__}-64", model, (torch.tensor(a), torch.tensor(b)), "fp16"
    )
    got = program(torch.tensor(a), torch.tensor(b))
    np.testing.assert_array_equal(got, sequential_fp16(a, b))
    wide = a.astype(np.float16).astype(np.float32) @ b.astype(np.float16).astype(np.float32)
    assert not np.array_equal(got, wide.astype(np.float16))  # not fp32 accumulation


def test_linear_is_sequential_matmul_then_bias(convert: Any) -> None:
    rng = np.random.default_rng(1)
    x = (rng.standard_normal((4, 64)) * 4).astype(np.float32)
    weight = (rng.standard_normal((3, 64)) * 4).astype(np.float32)
    bias = (rng.standard_normal(3) * 4).astype(np.float32)
    model = Linear(torch.tensor(weight), torch.tensor(bias)).eval()
    program = convert("linear-64", model, (torch.tensor(x),), "fp16")
    types = [op.op_type for op in program.ops]
    assert "coreai.decomposable.broadcasting_batch_matmul" in types
    assert "coreai.decomposable.broadcasting_add" in types
    expected = sequential_fp16(x, weight.T) + bias.astype(np.float16)
    np.testing.assert_array_equal(program(torch.tensor(x)), expected)


def test_reduce_sum_and_conv_accumulate_wider(convert: Any) -> None:
    ones = torch.ones(1, 4096)
    total = convert("sum-4096", Sum(), (ones,), "fp16")
    assert float(total(ones)[0]) == 4096.0
    a, w = torch.ones(1, 4096, 1), torch.ones(1, 4096, 1)
    conv = convert("conv-4096", Conv(), (a, w), "fp16")
    assert float(conv(a, w).ravel()[0]) == 4096.0
