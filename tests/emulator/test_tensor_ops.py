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

from pytest_coreml_parity.emulator import Emulator, UnspecifiedResultError

from . import support
from .support import ct

TARGETS = list(support.TARGETS)
PRECISIONS = list(support.PRECISIONS)
grid = support.grid


_randn = support.randn


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


class IndexPutAccumulate(nn.Module):
    def forward(self, x: torch.Tensor, idx: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return x.index_put((idx,), v, accumulate=True)


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
        "index_put_accumulate": (
            IndexPutAccumulate(),
            (_randn(5, 3), torch.tensor([4, 1, 4]), _randn(3, 3)),
        ),
    }


@grid
@pytest.mark.parametrize("case", list(_indexing_cases()))
def test_indexing_family(case: str, target: str, precision: str) -> None:
    model, inputs = _indexing_cases()[case]
    support.assert_close_to_torch(model, inputs, target=target, precision=precision)


# --------------------------------------------------------------------------- search family


class TopkCumsum(nn.Module):
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        values, indices = torch.topk(x, 3, dim=-1)
        low_values, low_indices = torch.topk(x, 2, dim=1, largest=False)
        return values, indices, low_values, low_indices, torch.cumsum(x, 1)


class Argmax(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.argmax(x, dim=1)


def _distinct(*shape: int) -> torch.Tensor:
    """Distinct values, exact in fp16: no ties, so indices are well defined in both precisions."""
    n = int(np.prod(shape))
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(3)).float()
    return ((perm - n // 2) / 4).reshape(shape)


@grid
def test_topk_cumsum_family(target: str, precision: str) -> None:
    x = _distinct(2, 7, 3)
    got = support.assert_close_to_torch(TopkCumsum(), (x,), target=target, precision=precision)
    want = support.torch_outputs(TopkCumsum(), (x,))
    for i in (1, 3):
        _assert_ints_equal(got[i], want[i])


@grid
def test_argmax_family(target: str, precision: str) -> None:
    x = _distinct(2, 7, 3)
    (got,) = support.assert_close_to_torch(Argmax(), (x,), target=target, precision=precision)
    _assert_ints_equal(got, support.torch_outputs(Argmax(), (x,))[0])


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


_MIL_DTYPES = {
    np.dtype(np.float32): "fp32",
    np.dtype(np.int32): "int32",
    np.dtype(np.bool_): "bool",
}


def run_mil(body: Any, *arrays: np.ndarray, op: str, target: Any = None) -> list[np.ndarray]:
    """Build a MIL program from ``body(*inputs)``, convert it (fp32), run it on the emulator.

    ``op`` must survive conversion (not be folded or fused away) so the test
    really exercises its kernel.
    """
    from coremltools.converters.mil import Builder as mb
    from coremltools.converters.mil.mil import types

    specs = [
        mb.TensorSpec(shape=a.shape, dtype=getattr(types, _MIL_DTYPES[a.dtype])) for a in arrays
    ]
    target = target or ct.target.iOS17
    funcs = {
        1: lambda x0: body(x0),
        2: lambda x0, x1: body(x0, x1),
        3: lambda x0, x1, x2: body(x0, x1, x2),
    }
    prog = mb.program(input_specs=specs, opset_version=target)(funcs[len(arrays)])
    mlmodel = ct.convert(
        prog,
        convert_to="mlprogram",
        minimum_deployment_target=target,
        compute_precision=ct.precision.FLOAT32,
    )
    emulator = Emulator(mlmodel)
    assert op in {o.op_type for o in emulator.ops}, f"{op} was folded away: {emulator.ops}"
    result = emulator.run({spec.name: a for spec, a in zip(emulator.inputs, arrays, strict=True)})
    return [result[name] for name in emulator.output_names]


def _x(*shape: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _i(values: Any) -> np.ndarray:
    return np.asarray(values, dtype=np.int32)


# --------------------------------------------------------------------------- focused: shape ops


@pytest.mark.parametrize(
    ("target", "shape", "want"),
    [
        (ct.target.iOS15, [0, 6, -1], (4, 6, 1)),
        (ct.target.iOS16, [-1, 0, 2], (4, 3, 2)),
        # iOS17: 0 copies the input dim aligned from the right; a 0 with no partner is 1.
        (ct.target.iOS17, [1, 0, -1, 0], (1, 4, 3, 2)),
        (ct.target.iOS17, [0, 1, -1, 0], (1, 1, 12, 2)),
        (ct.target.iOS17, [0, -1], (3, 8)),
    ],
)
def test_reshape_zero_and_minus_one(target: Any, shape: list[int], want: tuple[int, ...]) -> None:
    from coremltools.converters.mil import Builder as mb

    x = _x(4, 3, 2)
    (got,) = run_mil(
        lambda a: mb.reshape(x=mb.add(x=a, y=0.0), shape=shape), x, op="reshape", target=target
    )
    np.testing.assert_array_equal(got, x.reshape(want))


def test_reshape_with_runtime_shape() -> None:
    from coremltools.converters.mil import Builder as mb

    x = _x(4, 6)
    (got,) = run_mil(lambda a, s: mb.reshape(x=a, shape=s), x, _i([3, -1, 2]), op="reshape")
    np.testing.assert_array_equal(got, x.reshape(3, 4, 2))


def test_squeeze_expand_dims_flatten2d_shape() -> None:
    from coremltools.converters.mil import Builder as mb

    x = _x(1, 3, 1, 4)

    def body(a: Any) -> Any:
        return (
            mb.squeeze(x=a),
            mb.squeeze(x=a, axes=[-2]),
            mb.expand_dims(x=mb.squeeze(x=a), axes=[0, -1]),
            mb.flatten2d(x=a, axis=-1),
            mb.flatten2d(x=a, axis=2),
            mb.shape(x=a),
        )

    got = run_mil(body, x, op="flatten2d")
    np.testing.assert_array_equal(got[0], x.reshape(3, 4))
    np.testing.assert_array_equal(got[1], x.reshape(1, 3, 4))
    np.testing.assert_array_equal(got[2], x.reshape(1, 3, 4, 1))
    np.testing.assert_array_equal(got[3], x.reshape(3, 4))
    np.testing.assert_array_equal(got[4], x.reshape(3, 4))
    _assert_ints_equal(got[5], np.array([1, 3, 1, 4]))


def test_reshape_like() -> None:
    from coremltools.converters.mil import Builder as mb

    x = _x(2, 12)
    ref = _x(5, 3, 4, 7)
    (got,) = run_mil(
        lambda a, r: (
            mb.reshape_like(
                x=a, ref_tensors=(r, r), begins=(1, 2), ends=(2, 3), end_masks=(False, False)
            )
            if False
            else mb.reshape_like(
                x=a, ref_tensors=(r, a), begins=(1, 0), ends=(3, 1), end_masks=(False, False)
            )
        ),
        x,
        ref,
        op="reshape_like",
        target=ct.target.iOS16,
    )
    np.testing.assert_array_equal(got, x.reshape(3, 4, 2))


# --------------------------------------------------------------------------- focused: joins


def test_concat_interleave_stack_and_split() -> None:
    from coremltools.converters.mil import Builder as mb

    a, b = _x(3, 2), _x(3, 2, seed=1)

    def body(p: Any, q: Any) -> Any:
        inter = mb.concat(values=(p, q), axis=0, interleave=True)
        inter_last = mb.concat(values=(p, q, p), axis=-1, interleave=True)
        stacked = mb.stack(values=(p, q), axis=-1)
        even = mb.split(x=p, num_splits=3, axis=0)
        uneven = mb.split(x=inter, split_sizes=[1, 5], axis=0)
        return (inter, inter_last, stacked, *even, *uneven)

    got = run_mil(body, a, b, op="concat")
    want_inter = np.empty((6, 2), np.float32)
    want_inter[0::2], want_inter[1::2] = a, b
    np.testing.assert_array_equal(got[0], want_inter)
    np.testing.assert_array_equal(got[1], np.stack([a, b, a], axis=-1).reshape(3, 6))
    np.testing.assert_array_equal(got[2], np.stack([a, b], axis=-1))
    for k in range(3):
        np.testing.assert_array_equal(got[3 + k], a[k : k + 1])
    np.testing.assert_array_equal(got[6], want_inter[:1])
    np.testing.assert_array_equal(got[7], want_inter[1:])


def test_tile_reverse_and_band_part() -> None:
    from coremltools.converters.mil import Builder as mb

    x = _x(2, 4, 5)

    def body(a: Any) -> Any:
        return (
            mb.tile(x=a, reps=[2, 1, 3]),
            mb.reverse(x=a, axes=[-1, 0]),
            mb.reverse(x=a),
            mb.band_part(x=a, lower=1, upper=0),
            mb.band_part(x=a, lower=-1, upper=2),
        )

    got = run_mil(body, x, op="band_part")
    np.testing.assert_array_equal(got[0], np.tile(x, (2, 1, 3)))
    np.testing.assert_array_equal(got[1], x[::-1, :, ::-1])
    np.testing.assert_array_equal(got[2], x[::-1, ::-1, ::-1])
    m, n = np.indices((4, 5))
    np.testing.assert_array_equal(got[3], np.where((m - n <= 1) & (n - m <= 0), x, 0))
    np.testing.assert_array_equal(got[4], np.where(n - m <= 2, x, 0))


def test_reverse_sequence_and_sliding_windows() -> None:
    from coremltools.converters.mil import Builder as mb

    x = _x(3, 5, 2)
    lengths = _i([0, 3, 5])

    def body(a: Any, n: Any) -> Any:
        return (
            mb.reverse_sequence(x=a, lengths=n, seq_axis=1, batch_axis=0),
            mb.sliding_windows(x=a, axis=1, size=2, stride=2),
        )

    got = run_mil(body, x, lengths, op="sliding_windows")
    want = x.copy()
    for b, n in enumerate(lengths):
        want[b, :n] = x[b, :n][::-1]
    np.testing.assert_array_equal(got[0], want)
    windows = np.stack([x[:, 0:2], x[:, 2:4]], axis=1)  # (3, 2 windows, 2 size, 2)
    np.testing.assert_array_equal(got[1], windows)


# --------------------------------------------------------------------------- focused: slicing


def test_slice_by_index_masks_and_negative_stride() -> None:
    from coremltools.converters.mil import Builder as mb

    x = _x(4, 6, 5)

    def body(a: Any) -> Any:
        return (
            mb.slice_by_index(
                x=a,
                begin=[1, -1, 0],
                end=[0, 0, 4],
                stride=[1, -2, 3],
                begin_mask=[True, False, False],
                end_mask=[True, True, False],
            ),
            mb.slice_by_index(
                x=a,
                begin=[-1, 2, 0],
                end=[0, 5, 0],
                squeeze_mask=[True, False, False],
                end_mask=[False, False, True],
            ),
            mb.slice_by_index(x=a, begin=[0, 10, -100], end=[4, 20, 2]),
            mb.slice_by_size(x=a, begin=[1, 3, 0], size=[2, -1, 5]),
        )

    got = run_mil(body, x, op="slice_by_size")
    np.testing.assert_array_equal(got[0], x[:, -1::-2, 0:4:3])
    np.testing.assert_array_equal(got[1], x[-1, 2:5, :])
    np.testing.assert_array_equal(got[2], x[0:4, 10:20, -100:2])
    np.testing.assert_array_equal(got[3], x[1:3, 3:, 0:5])


def test_slice_by_index_runtime_bounds() -> None:
    from coremltools.converters.mil import Builder as mb

    x = _x(5, 6)
    (got,) = run_mil(
        lambda a, b: mb.slice_by_index(x=a, begin=b, end=[5, -1], stride=[2, 1]),
        x,
        _i([1, -4]),
        op="slice_by_index",
    )
    np.testing.assert_array_equal(got, x[1:5:2, -4:-1])


def test_slice_update() -> None:
    from coremltools.converters.mil import Builder as mb

    x, upd = _x(4, 6), _x(2, 3, seed=2)
    (got,) = run_mil(
        lambda a, u: mb.slice_update(x=a, update=u, begin=[1, 0], end=[4, 6], stride=[2, 2]),
        x,
        upd,
        op="slice_update",
        target=ct.target.iOS18,
    )
    want = x.copy()
    want[1:4:2, 0:6:2] = upd
    np.testing.assert_array_equal(got, want)


# --------------------------------------------------------------------------- focused: pad


def test_pad_modes_and_partial_pad() -> None:
    from coremltools.converters.mil import Builder as mb

    x = _x(2, 3, 4)

    def body(a: Any) -> Any:
        return (
            mb.pad(x=a, pad=[1, 2], mode="constant", constant_val=7.5),
            mb.pad(x=a, pad=[2, 0, 3, 3], mode="reflect"),
            mb.pad(x=a, pad=[0, 0, 3, 1, 4, 4], mode="replicate"),
        )

    got = run_mil(body, x, op="pad")
    np.testing.assert_array_equal(got[0], np.pad(x, [(0, 0), (0, 0), (1, 2)], constant_values=7.5))
    np.testing.assert_array_equal(got[1], np.pad(x, [(0, 0), (2, 0), (3, 3)], mode="reflect"))
    np.testing.assert_array_equal(got[2], np.pad(x, [(0, 0), (3, 1), (4, 4)], mode="edge"))


def test_reflect_pad_wider_than_input_is_rejected() -> None:
    from coremltools.converters.mil import Builder as mb

    from pytest_coreml_parity.emulator.errors import KernelError

    with pytest.raises(KernelError, match="reflect pad"):
        run_mil(lambda a: mb.pad(x=a, pad=[0, 4], mode="reflect"), _x(2, 4), op="pad")


# --------------------------------------------------------------------------- focused: generators


def test_fill_range_one_hot_non_zero() -> None:
    from coremltools.converters.mil import Builder as mb

    idx = _i([[2, 0], [1, 3]])
    shp = _i([2, 3])

    def body(i: Any, s: Any) -> Any:
        return (
            mb.fill(shape=s, value=2.5),
            mb.fill_like(ref_tensor=i, value=-1.0),
            mb.range_1d(start=mb.reduce_min(x=i), end=10, step=3),
            mb.range_1d(start=0.5, end=mb.cast(x=mb.reduce_max(x=i), dtype="fp32"), step=0.75),
            mb.one_hot(indices=i, one_hot_vector_size=4, axis=1, on_value=5.0, off_value=-1.0),
            mb.non_zero(x=i),
        )

    got = run_mil(body, idx, shp, op="one_hot", target=ct.target.iOS16)
    np.testing.assert_array_equal(got[0], np.full((2, 3), 2.5, np.float32))
    np.testing.assert_array_equal(got[1], np.full((2, 2), -1.0, np.float32))
    _assert_ints_equal(got[2], np.arange(0, 10, 3))
    np.testing.assert_array_equal(got[3], np.float32(0.5) + np.arange(4, dtype=np.float32) * 0.75)
    hot = np.where(np.arange(4)[None, :, None] == idx[:, None, :], 5.0, -1.0)
    np.testing.assert_array_equal(got[4], hot)
    _assert_ints_equal(got[5], np.argwhere(idx != 0))


# --------------------------------------------------------------------------- focused: scans and sorting


@pytest.mark.parametrize("exclusive", [False, True])
@pytest.mark.parametrize("reverse", [False, True])
def test_cumsum_exclusive_reverse(exclusive: bool, reverse: bool) -> None:
    from coremltools.converters.mil import Builder as mb

    x = _x(3, 5)
    (got,) = run_mil(
        lambda a: mb.cumsum(x=a, axis=-1, exclusive=exclusive, reverse=reverse), x, op="cumsum"
    )
    t = torch.from_numpy(x)
    if reverse:
        t = t.flip(-1)
    want = t.cumsum(-1)
    if exclusive:
        want = want - t
    if reverse:
        want = want.flip(-1)
    np.testing.assert_allclose(got, want.numpy(), rtol=1e-6, atol=1e-6)


def test_topk_variants() -> None:
    from coremltools.converters.mil import Builder as mb

    x = _distinct(3, 6).numpy()

    def body(a: Any) -> Any:
        return (
            *mb.topk(x=a, k=2, axis=0, ascending=True),
            *mb.topk(x=a, k=6, axis=-1, output_indices_dtype="uint16"),
            mb.topk(x=a, k=3, return_indices=False),
            mb.argsort(x=a, axis=0, ascending=False),
        )

    got = run_mil(body, x, op="topk")
    order = np.argsort(x, axis=0, kind="stable")[:2]
    np.testing.assert_array_equal(got[0], np.take_along_axis(x, order, 0))
    _assert_ints_equal(got[1], order)
    desc = np.argsort(-x, axis=-1, kind="stable")
    np.testing.assert_array_equal(got[2], np.take_along_axis(x, desc, -1))
    _assert_ints_equal(got[3], desc)
    np.testing.assert_array_equal(got[4], np.take_along_axis(x, desc[:, :3], -1))
    _assert_ints_equal(got[5], np.argsort(-x, axis=0, kind="stable"))


@pytest.mark.parametrize("values", ["distinct", "many ties", "fp16 with signed zeros"])
def test_topk_partition_path_equals_the_full_stable_sort(values: str) -> None:
    """topk's argpartition shortcut must give exactly the stable sort's first k
    positions, ties and -0.0 == 0.0 included (it falls back to the sort on a tie at the cut)."""
    from pytest_coreml_parity.emulator.kernels.tensor_ops import _sort_order, _top_order

    rng = np.random.default_rng(7)
    for _ in range(300):
        shape = tuple(int(v) for v in rng.integers(1, 40, size=int(rng.integers(1, 4))))
        axis = int(rng.integers(0, len(shape)))
        k = int(rng.integers(0, shape[axis] + 1))
        if values == "distinct":
            x = rng.standard_normal(shape).astype(np.float32)
        elif values == "many ties":
            x = rng.integers(-3, 4, size=shape).astype(np.float32)
        else:
            x = np.where(rng.random(shape) < 0.3, np.float16(-0.0), rng.standard_normal(shape).astype(np.float16))
        for ascending in (False, True):
            want = np.take(_sort_order(x, axis, ascending), np.arange(k), axis=axis)
            np.testing.assert_array_equal(_top_order(x, axis, k, ascending), want)


def test_topk_and_argsort_ties_prefer_lower_index() -> None:
    """Equal values keep their order (lower index first) in both directions."""
    from coremltools.converters.mil import Builder as mb

    x = np.array([[1.0, 3.0, 3.0, 2.0, 3.0, 1.0]], np.float32)

    def body(a: Any) -> Any:
        return (
            *mb.topk(x=a, k=4),
            *mb.topk(x=a, k=3, ascending=True),
            mb.argsort(x=a, ascending=False),
        )

    got = run_mil(body, x, op="topk")
    _assert_ints_equal(got[1], np.array([[1, 2, 4, 3]]))
    _assert_ints_equal(got[3], np.array([[0, 5, 3]]))
    _assert_ints_equal(got[4], np.array([[1, 2, 4, 3, 0, 5]]))


# --------------------------------------------------------------------------- focused: gather


def test_gather_batch_dims_and_negative_indices_ios16() -> None:
    from coremltools.converters.mil import Builder as mb

    x = _x(2, 5, 3)
    idx = _i([[0, -1, 2, -5], [4, 4, -2, 1]])

    def body(a: Any, i: Any) -> Any:
        return (
            mb.gather(x=a, indices=i, axis=1, batch_dims=1),
            mb.gather(x=a, indices=i, axis=-2),
            mb.gather_along_axis(
                x=mb.slice_by_size(x=a, begin=[0, 0, 0], size=[2, 5, 1]),
                indices=mb.slice_by_size(
                    x=mb.expand_dims(x=i, axes=[-1]), begin=[0, 0, 0], size=[2, 4, 1]
                ),
                axis=1,
            ),
        )

    got = run_mil(body, x, idx, op="gather", target=ct.target.iOS16)
    wrapped = np.where(idx < 0, idx + 5, idx)
    np.testing.assert_array_equal(got[0], np.stack([x[b][wrapped[b]] for b in range(2)]))
    np.testing.assert_array_equal(got[1], np.take(x, wrapped, axis=1))
    np.testing.assert_array_equal(got[2], np.take_along_axis(x[:, :, :1], wrapped[:, :, None], 1))


@pytest.mark.parametrize(
    ("target", "bad"),
    [(ct.target.iOS15, -6), (ct.target.iOS16, 5), (ct.target.iOS18, 7)],
)
def test_gather_out_of_bounds_is_rejected(target: Any, bad: int) -> None:
    from coremltools.converters.mil import Builder as mb

    from pytest_coreml_parity.emulator.errors import KernelError

    with pytest.raises(KernelError, match="out of bounds"):
        run_mil(
            lambda a, i: mb.gather(x=a, indices=i, axis=0),
            _x(5, 2),
            _i([0, bad]),
            op="gather",
            target=target,
        )


def test_negative_index_is_out_of_bounds_from_ios17() -> None:
    """iOS17+ declares negative indices out of bounds (undefined); the kernel refuses them.

    The converter always inserts a select that wraps runtime indices, so no
    converted program reaches this; the kernel is called directly.
    """
    from pytest_coreml_parity.emulator.kernels import scatter_gather
    from pytest_coreml_parity.emulator.registry import OpContext

    x = _x(5, 2)
    for opset, ok in (("iOS16", True), ("iOS17", False), ("iOS18", False)):
        ctx = OpContext("gather", "g", opset, (np.dtype(np.float32),), ((2, 2),))
        if ok:
            np.testing.assert_array_equal(scatter_gather.gather(ctx, x, _i([0, -1])), x[[0, -1]])
        else:
            with pytest.raises(UnspecifiedResultError, match="iOS17"):
                scatter_gather.gather(ctx, x, _i([0, -1]))


def test_gather_nd_with_batch_dims() -> None:
    from coremltools.converters.mil import Builder as mb

    x = _x(2, 4, 3, 5)
    idx = _i([[[0, 1], [3, 0]], [[2, 0], [1, 1]]])  # (2 batch, 2 rows, depth 2)

    def body(a: Any, i: Any) -> Any:
        return (
            mb.gather_nd(x=a, indices=i, batch_dims=1),
            mb.gather_nd(x=a, indices=mb.slice_by_size(x=i, begin=[0, 0, 1], size=[2, 2, 1])),
        )

    got = run_mil(body, x, idx, op="gather_nd")
    want = np.stack([x[b][idx[b, :, 0], idx[b, :, 1]] for b in range(2)])
    np.testing.assert_array_equal(got[0], want)
    np.testing.assert_array_equal(got[1], x[idx[:, :, 1]])


# --------------------------------------------------------------------------- focused: scatter

_NUMPY_MODES = {
    "add": np.add,
    "sub": np.subtract,
    "mul": np.multiply,
    "div": np.divide,
    "max": np.maximum,
    "min": np.minimum,
}


@pytest.mark.parametrize("mode", ["update", "add", "sub", "mul", "div", "max", "min"])
def test_scatter_ops_all_modes(mode: str) -> None:
    from coremltools.converters.mil import Builder as mb

    data = _x(4, 3)
    # Duplicates only where the mode defines how they combine.
    rows = [3, 0] if mode == "update" else [3, 0, 3]
    upd = _x(len(rows), 3, seed=5) + 2.0

    def body(d: Any, u: Any) -> Any:
        return (
            mb.scatter(data=d, indices=rows, updates=u, axis=0, mode=mode),
            mb.scatter_along_axis(
                data=d,
                indices=np.array([rows, rows, rows], np.int32).T,
                updates=u,
                axis=0,
                mode=mode,
            ),
            mb.scatter_nd(data=d, indices=np.array(rows, np.int32)[:, None], updates=u, mode=mode),
        )

    got = run_mil(body, data, upd, op="scatter_nd")
    want = data.copy()
    if mode == "update":
        want[rows] = upd
    else:
        _NUMPY_MODES[mode].at(want, rows, upd)
    for g in got:
        np.testing.assert_allclose(g, want, rtol=1e-6)


def _last_write_wins(data: np.ndarray, destinations: list[tuple[int, ...]], values: list[Any]) -> np.ndarray:
    """A plain loop: each update in row-major order overwrites what came before."""
    want = data.copy()
    for where, value in zip(destinations, values, strict=True):
        want[where] = value
    return want


def test_scatter_update_with_duplicate_indices_keeps_the_last_write() -> None:
    """Duplicate destinations in mode 'update': the last update in row-major order wins,
    as coremltools' reference and its device-run tests (``np.put_along_axis``) assume."""
    from coremltools.converters.mil import Builder as mb

    data, upd = _x(3, 2), _x(3, 2, seed=1)
    (got,) = run_mil(
        lambda d, u: mb.scatter(data=d, indices=[1, 2, 1], updates=u, mode="update"),
        data,
        upd,
        op="scatter",
    )
    np.testing.assert_array_equal(got, _last_write_wins(data, [1, 2, 1], list(upd)))

    # coremltools' own smoke case: column 0 is written by both rows, the second wins.
    data = np.array([[1, 2, 3], [4, 5, 6]], np.float32)
    idx = _i([[1, 0, 1], [1, 1, 0]])
    upd = np.array([[5, 6, 7], [8, 9, 10]], np.float32)
    (got,) = run_mil(
        lambda d, i, u: mb.scatter_along_axis(data=d, indices=i, updates=u, axis=0, mode="update"),
        data,
        idx,
        upd,
        op="scatter_along_axis",
    )
    np.testing.assert_array_equal(got, [[1, 6, 10], [8, 9, 7]])

    data, upd = _x(4, 3), _x(4, 3, seed=2)
    rows = [[2], [0], [2], [2]]
    (got,) = run_mil(
        lambda d, u: mb.scatter_nd(data=d, indices=_i(rows), updates=u, mode="update"),
        data,
        upd,
        op="scatter_nd",
    )
    np.testing.assert_array_equal(got, _last_write_wins(data, [r[0] for r in rows], list(upd)))


def test_reverse_sequence_batch_axis_after_seq_axis() -> None:
    from coremltools.converters.mil import Builder as mb

    x = _x(4, 3, 2)
    lengths = _i([4, 1, 2])
    (got,) = run_mil(
        lambda a, n: mb.reverse_sequence(x=a, lengths=n, seq_axis=0, batch_axis=1),
        x,
        lengths,
        op="reverse_sequence",
    )
    want = x.copy()
    for b, n in enumerate(lengths):
        want[:n, b] = x[:n, b][::-1]
    np.testing.assert_array_equal(got, want)


def test_topk_on_nan_is_rejected() -> None:
    from coremltools.converters.mil import Builder as mb

    from pytest_coreml_parity.emulator.errors import KernelError

    x = np.array([[1.0, np.nan, 2.0]], np.float32)
    with pytest.raises(KernelError, match="NaN"):
        run_mil(lambda a: mb.topk(x=a, k=2), x, op="topk")


@pytest.mark.parametrize("precision", PRECISIONS)
def test_fp16_movement_is_exact(precision: str) -> None:
    """Moving values never rounds: the fp16 output is the fp16-rounded input, bit for bit."""
    x = _randn(2, 6, 6) * 1000
    got = support.emulator_outputs(
        support.convert(Shaping(), (x,), target="iOS18", precision=precision), (x,)
    )
    dtype = np.float16 if precision == "fp16" else np.float32
    want = support.torch_outputs(
        Shaping(), (x.to(torch.float16 if precision == "fp16" else torch.float32).float(),)
    )
    # x * 2 and -x (in cat and stack) are exact in both dtypes as well.
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        np.testing.assert_array_equal(g, w.astype(dtype), err_msg=f"output {i}")
