"""Cross-check: the emulator's ``fp16-sequential`` profile against Apple's Core AI interpreter.

The same torch model is converted twice: by coremltools (FLOAT16, iOS17, fp16 I/O), run by
the emulator under ``fp16-sequential``; and by coreai-torch (``convert_for_coreai(...,
"fp16")``), run by coreai-core's interpreter. Where the two programs hold the same op
(matmul, linear, einsum), the outputs must be equal bit for bit; the ``typed`` profile
(fp32 accumulation) must not be, or the check would prove nothing. Inputs and weights are
fp16-representable, so neither converter's input rounding can differ.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from pytest_coreml_parity.emulator import Emulator

pytestmark = [pytest.mark.coreai, pytest.mark.usefixtures("needs_coreai")]


def fp16_exact(*shape: int, scale: float = 4.0, seed: int = 0) -> torch.Tensor:
    """A float32 tensor whose every value is a binary16 number."""
    rng = np.random.default_rng(seed)
    values = (rng.standard_normal(shape) * scale).astype(np.float16).astype(np.float32)
    return torch.tensor(values)


class Linear(torch.nn.Module):
    def __init__(self, fan_in: int, fan_out: int) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(fan_in, fan_out)
        with torch.no_grad():
            self.linear.weight.copy_(fp16_exact(fan_out, fan_in, scale=1.0, seed=10))
            self.linear.bias.copy_(fp16_exact(fan_out, scale=8.0, seed=11))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.linear(x)
        return out


class BatchedMatMul(torch.nn.Module):
    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return a @ b


class QueryKey(torch.nn.Module):
    """Attention scores, q @ k^T (coremltools: matmul with transpose_y=True)."""

    def forward(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        return q @ k.transpose(-1, -2)


class EinsumQueryKey(torch.nn.Module):
    """The same scores as an einsum (coremltools lowers it to matmul)."""

    def forward(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        return torch.einsum("bhqd,bhkd->bhqk", q, k)


class EinsumMil(torch.nn.Module):
    """An equation coremltools keeps as MIL ``einsum`` ('nchw,nwhu->nchu')."""

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.einsum("nchw,nwhu->nchu", a, b)


def probabilities(*shape: int, seed: int) -> torch.Tensor:
    """Softmax-like rows (what attn @ v multiplies), rounded to binary16."""
    rows = torch.softmax(fp16_exact(*shape, scale=2.0, seed=seed), dim=-1)
    return rows.half().float()


CASES: dict[str, tuple[torch.nn.Module, tuple[torch.Tensor, ...], str]] = {
    "linear": (Linear(256, 8), (fp16_exact(4, 256, seed=1),), "linear"),
    "batched-matmul-broadcast": (
        BatchedMatMul(),
        (fp16_exact(2, 3, 5, 64, seed=2), fp16_exact(2, 1, 64, 6, seed=3)),
        "matmul",
    ),
    "attention-q-kT": (
        QueryKey(),
        (fp16_exact(2, 4, 8, 32, seed=4), fp16_exact(2, 4, 8, 32, seed=5)),
        "matmul",
    ),
    "attention-attn-v": (
        BatchedMatMul(),
        (probabilities(2, 4, 8, 64, seed=6), fp16_exact(2, 4, 64, 16, scale=64.0, seed=7)),
        "matmul",
    ),
    "einsum-bhqd-bhkd": (
        EinsumQueryKey(),
        (fp16_exact(2, 4, 8, 32, seed=8), fp16_exact(2, 4, 8, 32, seed=9)),
        "matmul",
    ),
    "einsum-nchw-nwhu": (
        EinsumMil(),
        (fp16_exact(2, 3, 4, 40, seed=12), fp16_exact(2, 40, 4, 6, seed=13)),
        "einsum",
    ),
}


def coremltools_fp16(model: torch.nn.Module, inputs: tuple[torch.Tensor, ...]) -> Any:
    """coremltools' FLOAT16 ML Program with fp16 I/O (no casts around the op)."""
    import coremltools as ct

    traced = torch.jit.trace(model.eval(), inputs)
    return ct.convert(
        traced,
        inputs=[
            ct.TensorType(name=f"x{i}", shape=tuple(t.shape), dtype=np.float16)
            for i, t in enumerate(inputs)
        ],
        outputs=[ct.TensorType(name="y", dtype=np.float16)],
        compute_precision=ct.precision.FLOAT16,
        minimum_deployment_target=ct.target.iOS17,
        convert_to="mlprogram",
    )


def emulated(mlmodel: Any, inputs: tuple[torch.Tensor, ...], profile: str) -> np.ndarray:
    feed = {f"x{i}": t.numpy().astype(np.float16) for i, t in enumerate(inputs)}
    out: np.ndarray = Emulator(mlmodel, fp16_execution=profile).run(feed)["y"]
    return out


@pytest.mark.parametrize("case", list(CASES))
def test_fp16_sequential_profile_is_bit_identical_to_core_ai(convert: Any, case: str) -> None:
    model, inputs, op_type = CASES[case]
    mlmodel = coremltools_fp16(model, inputs)
    ops = [op.op_type for op in Emulator(mlmodel).ops]
    assert ops == [op_type], f"coremltools program changed: {ops}"  # one op, nothing fused
    core_ai = np.asarray(convert(f"crosscheck-{case}", model, inputs, "fp16")(*inputs))
    assert core_ai.dtype == np.float16

    sequential = emulated(mlmodel, inputs, "fp16-sequential")
    assert sequential.dtype == np.float16 and sequential.shape == core_ai.shape
    np.testing.assert_array_equal(sequential.view(np.uint16), core_ai.view(np.uint16))

    typed = emulated(mlmodel, inputs, "typed")  # fp32 accumulation: must differ somewhere
    assert not np.array_equal(typed.view(np.uint16), core_ai.view(np.uint16))


@pytest.mark.parametrize(
    ("values", "expected"),
    [([2048, 1, 1, 1, 1], 2048.0), ([1, 1, 1, 1, 2048], 2052.0), ([250, 250, -250], np.inf)],
)
def test_order_and_overflow_match_core_ai(convert: Any, values: list[int], expected: float) -> None:
    """The measured facts, through both stacks: order matters and a partial sum overflows."""
    scale = 250.0 if expected == np.inf else 1.0
    inputs = (torch.tensor([values], dtype=torch.float32), torch.full((len(values), 1), scale))
    mlmodel = coremltools_fp16(BatchedMatMul(), inputs)
    core_ai = np.asarray(convert(f"crosscheck-order-{values}", BatchedMatMul(), inputs, "fp16")(*inputs))
    sequential = emulated(mlmodel, inputs, "fp16-sequential")
    assert float(sequential[0, 0]) == float(core_ai[0, 0]) == expected
