"""The mask rule (masks.py) on real conversions: which ops carry the mask, what headroom
sets aside, and that a real overflow next to a mask still counts."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest
import torch

from pytest_coreml_parity.emulator import Emulator
from pytest_coreml_parity.headroom import HeadroomLog
from pytest_coreml_parity.masks import is_mask_source, mask_ops, masked_sinks

FILLS = {
    "inf": float("-inf"),
    "f32min": torch.finfo(torch.float32).min,
    "f16min": torch.finfo(torch.float16).min,
    "1e9": -1e9,
    "3e4": -3e4,
}


class Attention(torch.nn.Module):
    def __init__(self, fill: float, gain: float = 1.0) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.proj = torch.nn.Linear(16, 48)
        self.fill, self.gain = fill, gain

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.proj(x).chunk(3, -1)
        i = torch.arange(x.shape[1])
        mask = torch.zeros(x.shape[1], x.shape[1]).masked_fill(i[None, :] > i[:, None], self.fill)
        scores = q @ k.transpose(-1, -2) * self.gain + mask
        return torch.softmax(scores, -1) @ v


def _recorded(model: torch.nn.Module) -> Any:
    import coremltools as ct

    x = torch.randn(1, 6, 16, generator=torch.Generator().manual_seed(1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mlmodel = ct.convert(
            torch.jit.trace(model.eval(), (x,)),
            inputs=[ct.TensorType(name="x", shape=x.shape)],
            convert_to="mlprogram",
            compute_precision=ct.precision.FLOAT16,
            minimum_deployment_target=ct.target.iOS17,
        )
    return Emulator(mlmodel).record({"x": x.numpy()})


@pytest.mark.parametrize("fill", sorted(FILLS))
def test_the_mask_is_set_aside_and_nothing_past_the_softmax(fill: str) -> None:
    rec = _recorded(Attention(FILLS[fill]))
    masks = mask_ops(rec.ops, rec.values)
    types = {op.name: op.op_type for op in rec.ops}
    # the mask folds to a constant; its add (and, for -1e9 kept in fp32, its cast to fp16)
    assert sorted(types[name] for name in masks) in (["add"], ["add", "cast"])
    log = HeadroomLog()
    log.add(rec)
    for name in masks:
        assert log.ops[name].masked == 15  # the 6x6 causal mask's upper triangle
        assert log.ops[name].overflowed == 0 and log.ops[name].peak < 10
    assert masked_sinks(rec, masks) == []  # no fully masked row: every query sees itself


def test_a_real_overflow_next_to_a_mask_still_counts() -> None:
    rec = _recorded(Attention(-3e4, gain=3e4))  # scores past 65504
    log = HeadroomLog()
    log.add(rec)
    matmul = next(op for op in log.ops.values() if op.op_type == "matmul")
    scaled = next(op for op in log.ops.values() if op.op_type == "mul")
    assert matmul.peak > 1 and (scaled.overflowed or scaled.peak > 65504 / 4)


def test_a_constant_folded_to_nan_is_a_mask_source() -> None:
    assert is_mask_source(np.array([0.0, np.nan, -np.inf], np.float32))
    assert is_mask_source(np.full((2, 2), np.nan, np.float32))
    assert not is_mask_source(np.array([0.0, np.nan, 1.0], np.float32))
