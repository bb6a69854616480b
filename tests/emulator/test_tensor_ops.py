"""Tensor operations, transformations, scatter and gather: emulator vs torch.

Family tests convert real torch models at every target and precision and
compare the emulator to torch. Focused tests build MIL programs directly to hit
op variants the converter rarely emits, against numpy references.

These ops move values without arithmetic (except cumsum and scatter
accumulation), so fp16 results equal torch's exactly up to the fp16 rounding of
the inputs; the default fp16 tolerance in support.py covers that single
rounding with a wide margin.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pytest_coreml_parity.emulator import Emulator

from . import support
from .support import ct

TARGETS = list(support.TARGETS)
PRECISIONS = list(support.PRECISIONS)
grid = pytest.mark.parametrize(
    ("target", "precision"), [(t, p) for t in TARGETS for p in PRECISIONS]
)


def _randn(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def _assert_ints_equal(got: np.ndarray, want: np.ndarray) -> None:
    assert got.dtype.kind in "iu", f"expected integer output, got {got.dtype}"
    np.testing.assert_array_equal(got.astype(np.int64), want.astype(np.int64))


# --------------------------------------------------------------------------- indexing family


class Embedding(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.emb = nn.Embedding(10, 6)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return self.emb(idx)


class Gather(nn.Module):
    def forward(self, x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        return torch.gather(x, 1, idx)


class AdvancedIndex(nn.Module):
    def forward(self, x: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return x[a, b]


class Scatter(nn.Module):
    def forward(self, x: torch.Tensor, idx: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return x.scatter(1, idx, v)


class ScatterAdd(nn.Module):
    def forward(self, x: torch.Tensor, idx: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return x.scatter_add(1, idx, v)


class IndexPut(nn.Module):
    def forward(self, x: torch.Tensor, idx: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        x = x.clone()
        x[idx] = v
        return x


def _indexing_cases() -> dict[str, tuple[nn.Module, tuple[torch.Tensor, ...]]]:
    g = torch.Generator().manual_seed(1)
    return {
        # Negative indices exercise the wrap (iOS15/16) and the converter's select (iOS17+).
        "embedding": (Embedding(), (torch.randint(0, 10, (3, 4), generator=g),)),
        "gather": (Gather(), (_randn(3, 5), torch.randint(0, 5, (3, 4), generator=g))),
        "advanced_index": (
            AdvancedIndex(),
            (_randn(4, 5, 6), torch.tensor([0, -1, 2]), torch.tensor([4, 1, -2])),
        ),
        "scatter": (
            Scatter(),
            (_randn(3, 5), torch.tensor([[0, 1], [2, 3], [4, 0]]), _randn(3, 2)),
        ),
        # Duplicate destinations (row 0 hits column 1 twice) must accumulate.
        "scatter_add": (
            ScatterAdd(),
            (_randn(3, 5), torch.tensor([[1, 1, 3], [2, 3, 0], [4, 0, 4]]), _randn(3, 3)),
        ),
        "index_put": (IndexPut(), (_randn(5, 3), torch.tensor([0, 3]), _randn(2, 3))),
    }


@grid
@pytest.mark.parametrize("case", list(_indexing_cases()))
def test_indexing_family(case: str, target: str, precision: str) -> None:
    model, inputs = _indexing_cases()[case]
    support.assert_close_to_torch(model, inputs, target=target, precision=precision)


# --------------------------------------------------------------------------- search family


class ArgmaxTopkCumsum(nn.Module):
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        values, indices = torch.topk(x, 3, dim=-1)
        low_values, low_indices = torch.topk(x, 2, dim=1, largest=False)
        return torch.argmax(x, dim=1), values, indices, low_values, low_indices, torch.cumsum(x, 1)


@grid
def test_search_family(target: str, precision: str) -> None:
    # A permutation of distinct values that are exact in fp16: no ties, so the
    # indices are well defined in both precisions and must match torch exactly.
    x = (torch.randperm(42, generator=torch.Generator().manual_seed(3)).float() - 20) / 4
    x = x.reshape(2, 7, 3)
    got = support.assert_close_to_torch(
        ArgmaxTopkCumsum(), (x,), target=target, precision=precision
    )
    want = support.torch_outputs(ArgmaxTopkCumsum(), (x,))
    for i in (0, 2, 4):
        _assert_ints_equal(got[i], want[i])


# --------------------------------------------------------------------------- shaping family


class Shaping(nn.Module):
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        sliced = x[:, 1:5:2, -3:]
        stepped = x[1, ::3, -1]
        cat = torch.cat([x, x * 2], dim=1)
        stacked = torch.stack([x, -x], dim=-1)
        head, tail = torch.split(x, [2, 4], dim=1)
        chunks = torch.chunk(x, 3, dim=2)
        flat = x.reshape(3, -1).view(-1, 4).flatten()
        perm = x.permute(2, 0, 1).transpose(0, 1)
        unsq = x.unsqueeze(1).squeeze(1)
        return sliced, stepped, cat, stacked, head, tail, chunks[1], flat, perm, unsq


class Pads(nn.Module):
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return (
            F.pad(x, (1, 2, 0, 1)),
            F.pad(x, (1, 2, 0, 1), value=-3.5),
            F.pad(x, (2, 1, 1, 2), mode="reflect"),
            F.pad(x, (1, 3, 2, 0), mode="replicate"),
        )


@grid
def test_shaping_family(target: str, precision: str) -> None:
    support.assert_close_to_torch(Shaping(), (_randn(2, 6, 6),), target=target, precision=precision)


@grid
def test_pad_family(target: str, precision: str) -> None:
    support.assert_close_to_torch(Pads(), (_randn(2, 3, 5, 6),), target=target, precision=precision)


# --------------------------------------------------------------------------- focused MIL programs


def run_program(
    prog: Any, feed: dict[str, np.ndarray], target: Any = None
) -> dict[str, np.ndarray]:
    """Convert a MIL program (fp32 storage) and run it on the emulator."""
    mlmodel = ct.convert(
        prog,
        convert_to="mlprogram",
        minimum_deployment_target=target or ct.target.iOS17,
        compute_precision=ct.precision.FLOAT32,
    )
    return Emulator(mlmodel).run(feed)


def only(result: dict[str, np.ndarray]) -> np.ndarray:
    (value,) = result.values()
    return value
