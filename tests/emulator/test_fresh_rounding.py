"""fp16 rounding in place into a kernel's own new output (registry.FRESH_OUTPUT_OPS):
the same bits as a rounding into a new array, and only where nothing else holds the array."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from pytest_coreml_parity.emulator import Emulator
from pytest_coreml_parity.emulator.dtypes import F16, IN_PLACE_ROUND_MIN_SIZE, storer
from pytest_coreml_parity.emulator.registry import FRESH_OUTPUT_OPS

from . import support


def _specials(n: int) -> np.ndarray:
    rng = np.random.default_rng(31)
    x = (rng.standard_normal(n) * np.float32(10.0) ** rng.uniform(-9, 6, n)).astype(np.float32)
    ties = (np.arange(1, 2049, dtype=np.float32) + np.float32(0.5)) * np.float32(2.0**-10)
    edges = np.array(
        [65504, 65519.996, 65520, -65520, 2.0**-24, 2.0**-25, 3 * 2.0**-26, -0.0, np.inf, -np.inf, np.nan, 1e30],
        dtype=np.float32,
    )
    x[: ties.size] = ties
    x[ties.size : ties.size + edges.size] = edges
    return x


def test_fresh_storer_rounds_in_place_with_the_same_bits() -> None:
    x = _specials(1 << 16)
    with np.errstate(over="ignore"):
        want = x.astype(np.float16).astype(np.float32)
        owned = x.copy()
        got = storer(F16, fresh=True)(owned)
        assert got is owned  # no new float32 array
        assert got.tobytes() == want.tobytes()  # nan, -0.0 and inf included
        # float64 results (the norms' affine step), off float32's grid: rounded to odd in
        # their own memory, then to binary16: numpy's direct float64 -> binary16 rounding.
        wide = x.astype(np.float64) * (1.0 + np.random.default_rng(32).uniform(-1e-7, 1e-7, x.size))
        reference = wide.astype(np.float16).astype(np.float32)
        assert storer(F16)(wide).tobytes() == reference.tobytes()
        assert storer(F16, fresh=True)(wide.copy()).tobytes() == reference.tobytes()
        # A layout it cannot overwrite as is (a transposed view) takes a new array.
        square = x[: 256 * 256].reshape(256, 256)
        before = square.copy()
        got_t = storer(F16, fresh=True)(square.T)
        assert got_t.tobytes() == want[: 256 * 256].reshape(256, 256).T.tobytes()
        np.testing.assert_array_equal(square, before)
        # From IN_PLACE_ROUND_MIN_SIZE on, small outputs too (binary16 subnormals included).
        for n in (IN_PLACE_ROUND_MIN_SIZE, 3000):
            small = (x[-n:] * np.float32(1e-5)).astype(np.float32)
            reference = small.astype(np.float16).astype(np.float32)
            got_small = storer(F16, fresh=True)(small)
            assert got_small is small and got_small.tobytes() == reference.tobytes()


class FreshOps(torch.nn.Module):
    """Every op type of FRESH_OUTPUT_OPS, on outputs large enough for torch's rounding."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(4, 8, 3, padding=1)
        self.linear = torch.nn.Linear(32, 32)
        self.layer_norm = torch.nn.LayerNorm(32)
        self.batch_norm = torch.nn.BatchNorm2d(8)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:  # (1, 4, 32, 32), same
        c = self.conv(x)  # (1, 8, 32, 32)
        a = torch.nn.functional.hardsigmoid(c) * c + torch.sigmoid(c) - torch.nn.functional.silu(c)
        d = torch.nn.functional.gelu(self.linear(a)) / (y.repeat(1, 2, 1, 1) + 3.0)
        e = torch.exp(d) + torch.tanh(d) + torch.sqrt(d.abs()) + torch.rsqrt(d.pow(2) + 1.0)
        e = self.layer_norm(e) + self.batch_norm(e + 1.0)  # batch_norm not after a conv
        return torch.softmax(torch.matmul(e, d.transpose(-1, -2)) * 0.05, dim=-1)


def _inputs(step: Any, values: dict[str, Any]) -> dict[str, Any]:
    kwargs: dict[str, Any] = dict(step.consts)
    for key, var in step.refs:
        kwargs[key] = np.asarray(values[var], dtype=np.float32) if values[var].dtype == np.float16 else values[var]
    for key, items in step.tuples:
        kwargs[key] = tuple(values[p] if kind == "ref" else p for kind, p in items)
    return kwargs


def test_fresh_output_ops_return_new_arrays() -> None:
    """Each kernel of FRESH_OUTPUT_OPS returns an array sharing no memory with its
    inputs, its constants or its previous result; and the run's values are binary16."""
    torch.manual_seed(0)
    model = FreshOps().eval()
    x, y = torch.randn(1, 4, 32, 32), torch.randn(1, 4, 32, 32)
    mlmodel = support.convert(model, (x, y), target="iOS16", precision="fp16")
    emulator = Emulator(mlmodel)
    values = emulator.record({"x0": x.numpy(), "x1": y.numpy()}).values
    seen = set()
    with np.errstate(all="ignore"):
        for step in emulator.plan.block.steps:
            if step.ctx.op_type not in FRESH_OUTPUT_OPS:
                continue
            kwargs = _inputs(step, values)
            first, second = step.fn(step.ctx, **kwargs), step.fn(step.ctx, **kwargs)
            assert not np.shares_memory(first, second), step.ctx.name
            for value in kwargs.values():
                for operand in value if isinstance(value, tuple) else (value,):
                    if isinstance(operand, np.ndarray):
                        assert not np.shares_memory(first, operand), step.ctx.name
            if np.size(first) >= IN_PLACE_ROUND_MIN_SIZE:
                seen.add(step.ctx.op_type)
            out = values[step.outputs[0]]
            assert out.dtype == np.float16
    assert seen == FRESH_OUTPUT_OPS, f"not exercised at size: {sorted(FRESH_OUTPUT_OPS - seen)}"
    support.assert_close_to_torch(model, (x, y), target="iOS16", precision="fp16")


def test_float64_rounds_once_at_every_binary16_midpoint() -> None:
    """fp16_from_f64 rounds float64 to binary16 once (numpy's direct conversion): at
    every midpoint between two binary16 neighbours (subnormals and 65520 included),
    exactly there and one float64 ulp to either side, where rounding to nearest float32
    first would round twice."""
    from pytest_coreml_parity.emulator.dtypes import _fast_fp16_round_in_place, fp16_from_f64

    in_place = _fast_fp16_round_in_place()
    assert in_place is not None
    finite = np.arange(0, 0x7C00, dtype=np.uint16).view(np.float16).astype(np.float64)  # +0 .. 65504
    upper = np.append(finite[1:], 65536.0)
    mid = (finite + upper) / 2  # exact in float64
    x = np.concatenate([mid, np.nextafter(mid, np.inf), np.nextafter(mid, -np.inf), finite])
    x = np.concatenate([x, -x, [np.nan, np.inf, -np.inf, 1e300, -1e-300]])
    with np.errstate(over="ignore"):  # 1e300 overflows on purpose (the runner silences it)
        reference = x.astype(np.float16).astype(np.float32)
        got = fp16_from_f64(x, in_place)
        assert got.dtype == np.float32 and got.tobytes() == reference.tobytes()
        transposed = x[: 200 * 400].reshape(200, 400).T  # any layout
        want = reference[: 200 * 400].reshape(200, 400).T
        assert fp16_from_f64(transposed, in_place).tobytes() == want.tobytes()
