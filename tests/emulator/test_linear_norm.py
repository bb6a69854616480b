"""Reduction, linear, normalization and attention kernels: emulator vs torch and numpy.

Family tests convert real torch models at every target and precision and
compare the emulator to torch with the default tolerances of support.py.
Focused tests build MIL programs directly to hit op variants and numerics the
families do not (huge and tiny magnitudes, int inputs, masks), against
float64 numpy references or torch.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pytest_coreml_parity.emulator import Emulator, UnsupportedFeatureError

from . import support
from .support import ct

TARGETS = list(support.TARGETS)
PRECISIONS = list(support.PRECISIONS)
grid = support.grid


_randn = support.randn


# --------------------------------------------------------------------------- transformer block


class TransformerBlock(nn.Module):
    """Pre-norm block: LayerNorm, multi-head self attention by matmuls, GELU MLP, residuals."""

    def __init__(self, d: int = 16, heads: int = 2, bool_mask: bool = False) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.heads, self.d, self.bool_mask = heads, d, bool_mask
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.fc1, self.fc2 = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, t, d, h = 2, 5, self.d, self.heads
        q, k, v = self.qkv(self.ln1(x)).chunk(3, dim=-1)
        q, k, v = (z.reshape(b, t, h, d // h).transpose(1, 2) for z in (q, k, v))
        s = q @ k.transpose(-2, -1) / math.sqrt(d // h)
        s = s.masked_fill(mask, float("-inf")) if self.bool_mask else s + mask
        a = (torch.softmax(s, dim=-1) @ v).transpose(1, 2).reshape(b, t, d)
        x = x + self.proj(a)
        return x + self.fc2(F.gelu(self.fc1(self.ln2(x))))


# Converting masked_fill(-inf) at fp16, coremltools' const folding casts a float32
# constant to fp16 with numpy and numpy warns about the overflow; that is the
# converter's business, not the emulator's.
@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")
@grid
@pytest.mark.parametrize("mask_kind", ["float", "bool"])
def test_transformer_block(target: str, precision: str, mask_kind: str) -> None:
    x = _randn(2, 5, 16)
    causal = torch.triu(torch.ones(5, 5, dtype=torch.bool), diagonal=1)  # no fully masked row
    if mask_kind == "bool":
        mask, dtypes = causal[None, None], [None, np.bool_]
    else:  # additive mask, per batch, broadcast over heads; -1e4 is exact in fp16
        mask, dtypes = (causal * -1e4 + 0.5 * _randn(2, 1, 5, 5, seed=1)), None
    model = TransformerBlock(bool_mask=mask_kind == "bool")
    support.assert_close_to_torch(
        model, (x, mask), target=target, precision=precision, input_dtypes=dtypes
    )


# --------------------------------------------------------------------------- SDPA


class SDPA(nn.Module):
    def forward(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *mask: torch.Tensor
    ) -> Any:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask[0] if mask else None)


@grid
@pytest.mark.parametrize("mask_kind", ["none", "float", "bool"])
def test_scaled_dot_product_attention(target: str, precision: str, mask_kind: str) -> None:
    """iOS18 emits the fused op; iOS15-17 decompose it into matmul/softmax (bool mask: -3e4)."""
    q, k, v = _randn(2, 2, 5, 8, seed=1), _randn(2, 2, 6, 8, seed=2), _randn(2, 2, 6, 4, seed=3)
    inputs: tuple[torch.Tensor, ...] = (q, k, v)
    dtypes = None
    if mask_kind == "float":
        inputs += (_randn(5, 6, seed=4),)
    elif mask_kind == "bool":
        keep = torch.rand(5, 6, generator=torch.Generator().manual_seed(5)) > 0.4
        keep[:, 0] = True  # no fully masked row: torch gives zeros there, the MIL formula nan
        inputs += (keep,)
        dtypes = [None, None, None, np.bool_]
    support.assert_close_to_torch(
        SDPA(), inputs, target=target, precision=precision, input_dtypes=dtypes
    )
    if target == "iOS18":
        ops = {op.op_type for op in Emulator(_convert(SDPA(), inputs, target, dtypes)).ops}
        assert "scaled_dot_product_attention" in ops


def _convert(model: nn.Module, inputs: Any, target: str, dtypes: Any) -> Any:
    return support.convert(model, inputs, target=target, precision="fp32", input_dtypes=dtypes)


# --------------------------------------------------------------------------- einsum


class Einsum(nn.Module):
    def __init__(self, equation: str) -> None:
        super().__init__()
        self.equation = equation

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        return torch.einsum(self.equation, *xs)


EINSUMS = {
    "bij,bjk->bik": [(2, 3, 4), (2, 4, 5)],  # matmul
    "bhqd,bhkd->bhqk": [(2, 3, 4, 5), (2, 3, 6, 5)],  # matmul with transpose_y
    "ij->ji": [(3, 4)],  # transpose only
    "nchw,nwhu->nchu": [(2, 3, 4, 5), (2, 5, 4, 6)],  # the MIL einsum op, rank 4
    "chw,whr->chr": [(3, 4, 5), (5, 4, 6)],  # the MIL einsum op, rank 3
    "bij->bi": [(2, 3, 4)],  # reduce_sum
}


@grid
@pytest.mark.parametrize("equation", list(EINSUMS))
def test_einsum(target: str, precision: str, equation: str) -> None:
    inputs = [_randn(*s, seed=i) for i, s in enumerate(EINSUMS[equation])]
    support.assert_close_to_torch(Einsum(equation), inputs, target=target, precision=precision)


# --------------------------------------------------------------------------- reductions


class Reductions(nn.Module):
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return (
            x.sum(dim=-1),
            x.mean(dim=(1, 2), keepdim=True),
            x.amax(dim=1),
            x.amin(dim=0),
            torch.linalg.vector_norm(x, dim=-1),
            torch.norm(x, p=1, dim=1),
            torch.logsumexp(x, dim=1),
            x.argmax(dim=-1),
            x.argmin(dim=1, keepdim=True),
        )


@grid
def test_reductions(target: str, precision: str) -> None:
    # Distinct values that fp16 holds exactly, so argmax/argmin have no ties after rounding.
    perm = torch.randperm(24, generator=torch.Generator().manual_seed(0))
    x = ((perm - 12) / 4).reshape(2, 3, 4).float()
    support.assert_close_to_torch(Reductions(), (x,), target=target, precision=precision)


# --------------------------------------------------------------------------- norm layers


class Normalize(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(x, dim=-1)  # reduce_l2_norm, maximum, real_div


class InstanceNorm(nn.Module):
    """``torch.instance_norm``: the nn/functional wrappers check sizes in a way the tracer warns about."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.weight = nn.Parameter(torch.randn(channels))
        self.bias = nn.Parameter(torch.randn(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.instance_norm(x, self.weight, self.bias, None, None, True, 0.1, 1e-5, False)


def _batch_norm(module: nn.Module) -> nn.Module:
    """Non-trivial running statistics and affine parameters, in eval mode."""
    torch.manual_seed(0)
    with torch.no_grad():
        module.running_mean.normal_()
        module.running_var.uniform_(0.5, 2.0)
        module.weight.normal_()
        module.bias.normal_()
    return module.eval()


NORM_LAYERS = {
    "batch_norm_2d": (lambda: _batch_norm(nn.BatchNorm2d(3)), (2, 3, 4, 5)),
    "batch_norm_1d": (lambda: _batch_norm(nn.BatchNorm1d(3)), (4, 3)),
    "instance_norm_2d": (lambda: InstanceNorm(3), (2, 3, 4, 5)),
    "layer_norm_2_axes": (lambda: nn.LayerNorm([4, 5]), (2, 3, 4, 5)),
    "normalize": (Normalize, (2, 3, 8)),
}


@grid
@pytest.mark.parametrize("layer", list(NORM_LAYERS))
def test_norm_layers(target: str, precision: str, layer: str) -> None:
    make, shape = NORM_LAYERS[layer]
    support.assert_close_to_torch(make(), (_randn(*shape),), target=target, precision=precision)


# --------------------------------------------------------------------------- fp16 numerics


@pytest.mark.parametrize("target", TARGETS)
def test_layer_norm_fp16_large_magnitudes(target: str) -> None:
    """Squares of |x| ~ 1000-20000 exceed 65504, yet fp16 layer_norm must be finite and right."""
    torch.manual_seed(0)
    model = nn.LayerNorm(32)
    with torch.no_grad():
        model.weight.copy_(1 + 0.1 * _randn(32, seed=1))
        model.bias.copy_(0.1 * _randn(32, seed=2))
    rng = np.random.default_rng(0)
    mags = rng.uniform(1000, 20000, size=(4, 32)) * rng.choice([-1, 1], size=(4, 32))
    x = torch.from_numpy(mags.astype(np.float16).astype(np.float32))  # exact in fp16
    (out,) = support.assert_close_to_torch(model, (x,), target=target, precision="fp16")
    assert np.all(np.isfinite(out))
    # Mean 0 / std 1 before the affine: a 1000x larger input must give the same output.
    small = torch.from_numpy((mags / 1024).astype(np.float16).astype(np.float32))
    (out_small,) = support.emulator_outputs(
        support.convert(model, (small,), target=target, precision="fp16"), (small,)
    )
    np.testing.assert_allclose(out.astype(np.float32), out_small.astype(np.float32), atol=2e-3)


class Sum(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.sum(dim=-1)


def test_reduce_sum_overflows_to_inf_at_fp16() -> None:
    """A sum past 65504 is inf in an fp16 program (output rounding), finite in torch fp32."""
    x = torch.full((2, 8), 10000.0)
    x[1] = 1000.0
    mlmodel = support.convert(Sum(), (x,), target="iOS17", precision="fp16")
    (out,) = support.emulator_outputs(mlmodel, (x,))
    assert out[0] == np.inf
    assert out[1] == 8000.0
    (out32,) = support.emulator_outputs(
        support.convert(Sum(), (x,), target="iOS17", precision="fp32"), (x,)
    )
    np.testing.assert_array_equal(out32, [80000.0, 8000.0])


class MatMul(nn.Module):
    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return x @ y


def test_matmul_overflows_to_inf_at_fp16() -> None:
    x, y = torch.full((2, 4), 200.0), torch.full((4, 3), 100.0)  # each product 2e4, sum 8e4
    (out,) = support.emulator_outputs(
        support.convert(MatMul(), (x, y), target="iOS17", precision="fp16"), (x, y)
    )
    assert np.all(out == np.inf)


# --------------------------------------------------------------------------- MIL programs

_MIL_DTYPES = {
    np.dtype(np.float32): "fp32",
    np.dtype(np.float16): "fp16",
    np.dtype(np.int32): "int32",
    np.dtype(np.bool_): "bool",
}


def mil_model(body: Any, *arrays: np.ndarray, target: Any = None) -> Any:
    """Build a MIL program from ``body(*inputs)`` and convert it as typed (no fp16 casts added).

    fp16 arrays become fp16 program inputs (iOS16+), so the op runs at fp16.
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
        4: lambda x0, x1, x2, x3: body(x0, x1, x2, x3),
    }
    prog = mb.program(input_specs=specs, opset_version=target)(funcs[len(arrays)])
    return support.convert_program(prog, target)


def _feed(emulator: Emulator, arrays: tuple[np.ndarray, ...]) -> dict[str, np.ndarray]:
    return {spec.name: a for spec, a in zip(emulator.inputs, arrays, strict=True)}


def run_mil(body: Any, *arrays: np.ndarray, op: str, target: Any = None) -> list[np.ndarray]:
    """Run ``mil_model(body, *arrays)`` on the emulator; return its outputs in order.

    ``op`` must survive conversion, so the test really exercises its kernel.
    """
    emulator = Emulator(mil_model(body, *arrays, target=target))
    assert op in {o.op_type for o in emulator.ops}, f"{op} was folded away: {emulator.ops}"
    result = emulator.run(_feed(emulator, arrays))
    return [result[name] for name in emulator.output_names]


def _mb() -> Any:
    from coremltools.converters.mil import Builder as mb

    return mb


def _x(*shape: int, seed: int = 0, scale: float = 1.0, dtype: Any = np.float32) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(dtype)


def _close(got: np.ndarray, want: np.ndarray, rtol: float = 1e-5, atol: float = 0.0) -> None:
    np.testing.assert_allclose(got.astype(np.float64), want, rtol=rtol, atol=atol)


# --------------------------------------------------------------------------- focused: reductions


def _np_reduce(name: str, x: np.ndarray, axes: tuple[int, ...] | None, keep: bool) -> np.ndarray:
    x = x.astype(np.float64)
    fns = {
        "reduce_sum": lambda: np.sum(x, axis=axes, keepdims=keep),
        "reduce_mean": lambda: np.mean(x, axis=axes, keepdims=keep),
        "reduce_max": lambda: np.max(x, axis=axes, keepdims=keep),
        "reduce_min": lambda: np.min(x, axis=axes, keepdims=keep),
        "reduce_prod": lambda: np.prod(x, axis=axes, keepdims=keep),
        "reduce_l1_norm": lambda: np.sum(np.abs(x), axis=axes, keepdims=keep),
        "reduce_l2_norm": lambda: np.sqrt(np.sum(x * x, axis=axes, keepdims=keep)),
        "reduce_sum_square": lambda: np.sum(x * x, axis=axes, keepdims=keep),
        "reduce_log_sum": lambda: np.log(np.sum(np.abs(x), axis=axes, keepdims=keep)),
        "reduce_log_sum_exp": lambda: np.log(np.sum(np.exp(x), axis=axes, keepdims=keep)),
    }
    return fns[name]()


@pytest.mark.parametrize(
    "name",
    [
        "reduce_sum",
        "reduce_mean",
        "reduce_max",
        "reduce_min",
        "reduce_prod",
        "reduce_l1_norm",
        "reduce_l2_norm",
        "reduce_sum_square",
        "reduce_log_sum",
        "reduce_log_sum_exp",
    ],
)
@pytest.mark.parametrize(("axes", "keep"), [((1, -1), True), ((0,), False), (None, False)])
def test_reduce_variants(name: str, axes: tuple[int, ...] | None, keep: bool) -> None:
    x = _x(2, 3, 4)
    if name == "reduce_log_sum":
        x = np.abs(x)  # log of a positive sum
    got = run_mil(lambda v: getattr(_mb(), name)(x=v, axes=axes, keep_dims=keep), x, op=name)[0]
    want = _np_reduce(name, x, None if axes is None else tuple(a % 3 for a in axes), keep)
    # A rank-0 model output comes back with shape (1,), as Core ML's predict returns it.
    assert got.shape == (np.shape(want) or (1,))
    _close(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["reduce_argmax", "reduce_argmin"])
@pytest.mark.parametrize("keep", [False, True])
def test_reduce_arg(name: str, keep: bool) -> None:
    x = _x(3, 5, 4)
    got = run_mil(lambda v: getattr(_mb(), name)(x=v, axis=1, keep_dims=keep), x, op=name)[0]
    want = (np.argmax if name == "reduce_argmax" else np.argmin)(x, axis=1)
    np.testing.assert_array_equal(got, np.expand_dims(want, 1) if keep else want)
    assert got.dtype == np.int32


def test_reduce_argmax_uint16_output_ios17() -> None:
    x = _x(4, 6)
    body = lambda v: _mb().reduce_argmax(x=v, axis=-1, output_dtype="uint16")  # noqa: E731
    emulator = Emulator(mil_model(body, x))
    recording = emulator.record(_feed(emulator, (x,)))
    (op,) = [o for o in emulator.ops if o.op_type == "reduce_argmax"]
    (got,) = recording.op_outputs(op)
    assert got.dtype == np.uint16  # the converter casts the model output to int32 after it
    np.testing.assert_array_equal(got, np.argmax(x, axis=-1))


def test_reduce_int32_inputs() -> None:
    x = np.arange(-6, 18, dtype=np.int32).reshape(4, 6)
    mb = _mb()
    outs = run_mil(
        lambda v: (
            mb.reduce_sum(x=v, axes=[1]),
            mb.reduce_max(x=v, axes=[0]),
            mb.reduce_sum_square(x=v, axes=[1]),
            mb.reduce_argmin(x=v, axis=0),
        ),
        x,
        op="reduce_sum",
    )
    np.testing.assert_array_equal(outs[0], x.sum(1))
    np.testing.assert_array_equal(outs[1], x.max(0))
    np.testing.assert_array_equal(outs[2], (x * x).sum(1))
    np.testing.assert_array_equal(outs[3], x.argmin(0))
    assert all(o.dtype == np.int32 for o in outs)


@pytest.mark.parametrize(
    ("name", "scale"),
    [
        ("reduce_l2_norm", 1e30),  # float32 squares overflow
        ("reduce_l2_norm", 1e-30),  # float32 squares underflow to 0
        ("reduce_log_sum_exp", 1e3),  # exp overflows without the max shift
        ("reduce_mean", 1e38),  # the float32 sum overflows
        ("reduce_log_sum", 1e38),  # the float32 sum overflows
    ],
)
def test_reduce_fp32_no_interior_overflow(name: str, scale: float) -> None:
    x = np.abs(_x(3, 8)) + 1.0
    x = (x / x.max() * scale).astype(np.float32)
    got = run_mil(lambda v: getattr(_mb(), name)(x=v, axes=[-1]), x, op=name)[0]
    xd = x.astype(np.float64)
    want = {
        "reduce_l2_norm": lambda: np.sqrt(np.sum(xd * xd, -1)),
        "reduce_log_sum_exp": lambda: (
            np.log(np.sum(np.exp(xd - xd.max(-1, keepdims=True)), -1)) + xd.max(-1)
        ),
        "reduce_mean": lambda: xd.mean(-1),
        "reduce_log_sum": lambda: np.log(xd.sum(-1)),
    }[name]()
    assert np.all(np.isfinite(got))
    _close(got, want, rtol=1e-5)


def test_reduce_prod_no_intermediate_overflow() -> None:
    x = np.array([[1e30, 1e30, 1e-30, 1e-20], [2.0, -3.0, 0.5, 4.0]], dtype=np.float32)
    got = run_mil(lambda v: _mb().reduce_prod(x=v, axes=[1]), x, op="reduce_prod")[0]
    _close(got, np.prod(x.astype(np.float64), axis=1), rtol=1e-6)


def test_reduce_fp16_program() -> None:
    """fp16 inputs around 1000: squares exceed 65504 but the l2 norm (about 2900) does not."""
    x = np.full((2, 8), 1000.0, np.float16)
    x[1] = 30000.0  # l2 norm 84853 > 65504: inf at fp16 output, as on device
    outs = run_mil(
        lambda v: (_mb().reduce_l2_norm(x=v, axes=[1]), _mb().reduce_log_sum_exp(x=v, axes=[1])),
        x,
        op="reduce_l2_norm",
    )
    assert outs[0].dtype == np.float16
    _close(outs[0][:1], [1000 * np.sqrt(8)], rtol=1e-3)
    assert outs[0][1] == np.inf
    _close(outs[1], [1000 + np.log(8), 30000 + np.log(8)], rtol=1e-3)


def test_reduce_log_sum_exp_edge_rows() -> None:
    x = np.array([[-np.inf] * 3, [np.inf, 0, 1], [np.nan, 0, 1], [0, 0, 0]], np.float32)
    got = run_mil(lambda v: _mb().reduce_log_sum_exp(x=v, axes=[1]), x, op="reduce_log_sum_exp")[0]
    assert got[0] == -np.inf and got[1] == np.inf and np.isnan(got[2])
    _close(got[3:], [np.log(3.0)], rtol=1e-6)


# --------------------------------------------------------------------------- focused: linear


@pytest.mark.parametrize(
    ("xs", "ys", "tx", "ty"),
    [
        ((3, 4), (4, 5), False, False),
        ((4, 3), (4, 5), True, False),
        ((3, 4), (5, 4), False, True),
        ((2, 1, 4, 3), (5, 5, 4), True, True),  # broadcast batch dims
        ((4,), (4, 5), False, False),  # 1-D x (coremltools cannot build a 1-D y)
        ((4,), (5, 4), False, True),
    ],
)
def test_matmul_variants(xs: tuple[int, ...], ys: tuple[int, ...], tx: bool, ty: bool) -> None:
    x, y = _x(*xs, seed=1), _x(*ys, seed=2)
    body = lambda a, b: _mb().matmul(x=a, y=b, transpose_x=tx, transpose_y=ty)  # noqa: E731
    got = run_mil(body, x, y, op="matmul")[0]
    a = np.swapaxes(x, -1, -2) if tx else x
    b = np.swapaxes(y, -1, -2) if ty and y.ndim > 1 else y
    want = np.matmul(a.astype(np.float64), b.astype(np.float64))
    assert got.shape == want.shape
    _close(got, want, rtol=1e-5, atol=1e-6)


def test_matmul_rank1_x_with_batched_y_is_refused() -> None:
    """coremltools declares [1, N] for [K] @ [B, K, N] where the spec says [B, N]."""
    x, y = _x(4, seed=1), _x(2, 4, 5, seed=2)
    with pytest.raises(UnsupportedFeatureError, match="rank-1 x"):
        run_mil(lambda a, b: _mb().matmul(x=a, y=b), x, y, op="matmul")


def test_matmul_int32() -> None:
    x = np.arange(12, dtype=np.int32).reshape(3, 4) - 5
    y = np.arange(8, dtype=np.int32).reshape(4, 2)
    got = run_mil(lambda a, b: _mb().matmul(x=a, y=b), x, y, op="matmul")[0]
    assert got.dtype == np.int32
    np.testing.assert_array_equal(got, x @ y)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("shape", [(6,), (3, 6), (2, 3, 6)])
def test_linear(bias: bool, shape: tuple[int, ...]) -> None:
    x, w, b = _x(*shape), _x(4, 6, seed=1), _x(4, seed=2)
    body = lambda v: _mb().linear(x=v, weight=w, bias=b) if bias else _mb().linear(x=v, weight=w)  # noqa: E731
    got = run_mil(body, x, op="linear")[0]
    want = x.astype(np.float64) @ w.T.astype(np.float64) + (b if bias else 0)
    _close(got, want, rtol=1e-5, atol=1e-6)


def test_linear_fp16_weights_fp32_input_ios17() -> None:
    """iOS17 linear lets weights be fp16 while x and the output stay fp32."""
    x, w = _x(3, 6), _x(4, 6, seed=1, dtype=np.float16)
    got = run_mil(lambda v: _mb().linear(x=v, weight=w), x, op="linear")[0]
    assert got.dtype == np.float32
    _close(got, x.astype(np.float64) @ w.T.astype(np.float64), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("equation", "xs", "ys"),
    [
        ("nchw,nwhu->nchu", (2, 3, 4, 5), (2, 5, 4, 6)),
        ("nchw,nwhu->nchu", (1, 3, 4, 5), (2, 5, 1, 6)),  # n and h broadcast
        ("abcd,adce->abce", (2, 3, 4, 5), (2, 5, 4, 6)),  # renamed letters
        ("chw,whr->chr", (3, 4, 5), (5, 4, 6)),
        ("chw,whr->chr", (3, 1, 5), (5, 4, 6)),  # h broadcast
    ],
)
def test_einsum_op(equation: str, xs: tuple[int, ...], ys: tuple[int, ...]) -> None:
    x, y = _x(*xs, seed=1), _x(*ys, seed=2)
    got = run_mil(lambda a, b: _mb().einsum(values=(a, b), equation=equation), x, y, op="einsum")
    hdim = -2
    shape_x, shape_y = list(x.shape), list(y.shape)
    shape_x[hdim] = shape_y[hdim] = max(x.shape[hdim], y.shape[hdim])
    if x.ndim == 4:
        shape_x[0] = shape_y[0] = max(x.shape[0], y.shape[0])
    want = np.einsum(
        equation,
        np.broadcast_to(x, shape_x).astype(np.float64),
        np.broadcast_to(y, shape_y).astype(np.float64),
    )
    assert got[0].shape == want.shape
    _close(got[0], want, rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------- focused: norms


def _np_layer_norm(x: np.ndarray, axes: tuple[int, ...], eps: float) -> np.ndarray:
    xd = x.astype(np.float64)
    d = xd - xd.mean(axis=axes, keepdims=True)
    return d / np.sqrt((d * d).mean(axis=axes, keepdims=True) + eps)


@pytest.mark.parametrize(
    ("dtype", "scale"),
    [
        (np.float32, 1.0),
        (np.float32, 1e37),  # float32 squares overflow
        (np.float16, 1.0),
        (np.float16, 1e4),  # fp16 squares overflow; the result must still be right
    ],
)
@pytest.mark.parametrize("axes", [(-1,), (1, 2), (0, 1, 2)])
def test_layer_norm(dtype: Any, scale: float, axes: tuple[int, ...]) -> None:
    x = _x(2, 3, 8, scale=scale, dtype=dtype)
    param_shape = tuple(x.shape[a] for a in axes)
    gamma, beta = _x(*param_shape, seed=1, dtype=dtype), _x(*param_shape, seed=2, dtype=dtype)

    def body(v: Any) -> Any:
        return _mb().layer_norm(x=v, axes=list(axes), gamma=gamma, beta=beta, epsilon=dtype(1e-5))

    got = run_mil(body, x, op="layer_norm")[0]
    ax = tuple(a % 3 for a in axes)
    shape = [x.shape[i] if i in ax else 1 for i in range(3)]
    want = _np_layer_norm(x, ax, 1e-5) * gamma.reshape(shape) + beta.reshape(shape)
    assert got.dtype == dtype and np.all(np.isfinite(got))
    # fp16: one rounding of the output (half an ulp, 2**-11 relative) plus gamma's size.
    tol = 1e-5 if dtype == np.float32 else 2e-3
    _close(got, want, rtol=tol, atol=tol)


def test_layer_norm_constant_rows() -> None:
    """All-equal rows normalize to 0 (then beta), even when scaled eps underflows."""
    x = np.array([[3e38] * 7, [6e4] * 7, [0.1] * 7, [0] * 7, list(range(7))], np.float32)
    got = run_mil(lambda v: _mb().layer_norm(x=v, axes=[1]), x, op="layer_norm")[0]
    np.testing.assert_array_equal(got[:4], 0)
    _close(got[4], _np_layer_norm(x[4:], (1,), 1e-5)[0], rtol=1e-5)


@pytest.mark.parametrize(
    ("dtype", "scale"), [(np.float32, 1.0), (np.float16, 2e4), (np.float32, 1e36)]
)
def test_instance_norm(dtype: Any, scale: float) -> None:
    x = _x(2, 3, 4, 5, scale=scale, dtype=dtype)
    gamma, beta = _x(3, seed=1).astype(dtype), _x(3, seed=2).astype(dtype)
    body = lambda v: _mb().instance_norm(x=v, gamma=gamma, beta=beta, epsilon=dtype(1e-5))  # noqa: E731
    got = run_mil(body, x, op="instance_norm")[0]
    want = _np_layer_norm(x, (2, 3), 1e-5) * gamma.reshape(1, 3, 1, 1) + beta.reshape(1, 3, 1, 1)
    assert np.all(np.isfinite(got))
    tol = 1e-5 if dtype == np.float32 else 2e-3
    _close(got, want, rtol=tol, atol=tol)


@pytest.mark.parametrize("scale", [1.0, 1e38])
def test_batch_norm(scale: float) -> None:
    x = _x(2, 3, 4, scale=scale)
    # At scale 1e38, x - mean exceeds float32's max (3.4e38) for channels 0 and 2.
    mean = (np.array([-3.0, 0.5, 3.0]) * scale).astype(np.float32)
    var = np.array([1e30, 4.0, 1e37], np.float32)
    gamma, beta = np.array([1.0, 1e-20, 0.5], np.float32), np.array([0.0, 1.0, -2.0], np.float32)
    body = lambda v: _mb().batch_norm(  # noqa: E731
        x=v, mean=mean, variance=var, gamma=gamma, beta=beta, epsilon=np.float32(1e-5)
    )
    got = run_mil(body, x, op="batch_norm")[0]
    c = (1, 3, 1)
    xd = x.astype(np.float64)
    want = (xd - mean.reshape(c)) / np.sqrt(var.reshape(c) + 1e-5) * gamma.reshape(
        c
    ) + beta.reshape(c)
    assert np.all(np.isfinite(got))
    _close(got, want, rtol=1e-6)


@pytest.mark.parametrize(
    ("shape", "dtype", "scale"),
    [
        ((2, 3, 4), np.float32, 1.0),
        ((2, 2, 3, 4), np.float32, 1e30),
        ((2, 2, 3, 4), np.float16, 1e3),
    ],
)
def test_l2_norm(shape: tuple[int, ...], dtype: Any, scale: float) -> None:
    x = _x(*shape, scale=scale, dtype=dtype)
    got = run_mil(lambda v: _mb().l2_norm(x=v, epsilon=dtype(1e-6)), x, op="l2_norm")[0]
    xd = x.astype(np.float64)
    ax = tuple(range(x.ndim - 3, x.ndim))
    want = xd / np.sqrt((xd * xd).sum(axis=ax, keepdims=True) + 1e-6)
    assert np.all(np.isfinite(got))
    _close(got, want, rtol=1e-5 if dtype == np.float32 else 1e-3, atol=1e-7)


@pytest.mark.parametrize("size", [1, 2, 3, 5])
@pytest.mark.parametrize("shape", [(2, 6, 4), (1, 6, 3, 4), (1, 4, 2, 3, 2)])
def test_local_response_norm_matches_torch(size: int, shape: tuple[int, ...]) -> None:
    x = _x(*shape, scale=3.0)
    alpha, beta, k = np.float32(0.01), np.float32(0.75), np.float32(2.0)
    body = lambda v: _mb().local_response_norm(x=v, size=size, alpha=alpha, beta=beta, k=k)  # noqa: E731
    got = run_mil(body, x, op="local_response_norm")[0]
    lrn = nn.LocalResponseNorm(size=size, alpha=float(alpha), beta=float(beta), k=float(k))
    # Rank 3 is read as [C, H, W] (see the next test): torch on x[None] is the reference.
    ref = torch.from_numpy(x)[None] if x.ndim == 3 else torch.from_numpy(x)
    want = lrn(ref).numpy().reshape(x.shape)
    _close(got, want.astype(np.float64), rtol=1e-5, atol=1e-6)


def test_local_response_norm_rank3_windows_over_axis0() -> None:
    """coremltools' device-run smoke test, hard-coded at atol 1e-4: for a (1, 3, 2)
    input every value is normalized by itself alone, i.e. the window runs over the
    size-1 axis 0, not over the 3 "channels" the MIL docstring's [n, C, D] names."""
    x = np.array([[[1.0, -7.0], [5.0, -6.0], [-3.0, -5.0]]], dtype=np.float32)
    got = run_mil(lambda v: _mb().local_response_norm(x=v, size=2), x, op="local_response_norm")[0]
    want = [[[0.99996257, -6.98716545], [4.99531746, -5.99191284], [-2.99898791, -4.99531746]]]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)


def test_local_response_norm_fp32_huge() -> None:
    """Squares of 1e20 overflow float32; the normalized values (about 1e-7) do not."""
    x = np.abs(_x(1, 5, 3, 2, scale=1e20)) + 1e19
    got = run_mil(
        lambda v: _mb().local_response_norm(x=v, size=3),
        x.astype(np.float32),
        op="local_response_norm",
    )[0]
    xd = x.astype(np.float32).astype(np.float64)
    sq = np.pad(xd * xd, [(0, 0), (1, 1), (0, 0), (0, 0)])
    window = sq[:, :-2] + sq[:, 1:-1] + sq[:, 2:]
    want = xd / (1.0 + 1e-4 / 3 * window) ** 0.75
    assert np.all(got > 0)
    _close(got, want, rtol=1e-5)


# --------------------------------------------------------------------------- focused: SDPA


def _np_sdpa(q: np.ndarray, k: np.ndarray, v: np.ndarray, mask: Any = None) -> np.ndarray:
    s = q.astype(np.float64) @ np.swapaxes(k, -1, -2).astype(np.float64) / np.sqrt(q.shape[-1])
    if mask is not None:
        s = np.where(mask, s, -np.inf) if mask.dtype == np.bool_ else s + mask
    with np.errstate(invalid="ignore"):
        p = np.exp(s - s.max(-1, keepdims=True))
        return (p / p.sum(-1, keepdims=True)) @ v.astype(np.float64)


def _sdpa(*vs: Any) -> Any:
    kwargs = {"attn_mask": vs[3]} if len(vs) == 4 else {}
    return _mb().scaled_dot_product_attention(query=vs[0], key=vs[1], value=vs[2], **kwargs)


@pytest.mark.parametrize("mask_kind", ["none", "float", "bool", "float_broadcast"])
def test_sdpa_op(mask_kind: str) -> None:
    q, k, v = _x(2, 3, 4, 8, seed=1), _x(2, 3, 6, 8, seed=2), _x(2, 3, 6, 5, seed=3)
    arrays = [q, k, v]
    if mask_kind == "float":
        arrays.append(_x(2, 3, 4, 6, seed=4))
    elif mask_kind == "float_broadcast":
        arrays.append(_x(1, 4, 6, seed=4))
    elif mask_kind == "bool":
        mask = np.random.default_rng(5).random((4, 6)) > 0.4
        mask[:, 0] = True
        arrays.append(mask)
    got = run_mil(_sdpa, *arrays, op="scaled_dot_product_attention", target=ct.target.iOS18)[0]
    _close(got, _np_sdpa(*arrays), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("mask_kind", ["bool", "float"])
def test_sdpa_fully_masked_row_is_nan(mask_kind: str) -> None:
    """The MIL formula (and torch.softmax) gives nan; torch's own SDPA gives 0 since 2.5."""
    q, k, v = _x(1, 3, 4, seed=1), _x(1, 5, 4, seed=2), _x(1, 5, 2, seed=3)
    keep = np.ones((3, 5), bool)
    keep[1] = False
    mask = keep if mask_kind == "bool" else np.where(keep, 0, -np.inf).astype(np.float32)
    got = run_mil(_sdpa, q, k, v, mask, op="scaled_dot_product_attention", target=ct.target.iOS18)[
        0
    ]
    assert np.all(np.isnan(got[0, 1]))
    _close(got[0, [0, 2]], _np_sdpa(q, k, v, keep)[0, [0, 2]], rtol=1e-5, atol=1e-6)
    torch_out = F.scaled_dot_product_attention(
        *(torch.from_numpy(a) for a in (q, k, v)), attn_mask=torch.from_numpy(mask)
    )
    assert torch.all(torch_out[0, 1] == 0)  # the documented difference from torch


def test_sdpa_fp16_fused_scores_do_not_overflow() -> None:
    """Scores near 1e5 exceed fp16, but the fused fp16 op rounds only its output."""
    q = np.full((1, 2, 8), 100.0, np.float16)
    k = np.full((1, 3, 8), 100.0, np.float16)
    k[0, 0] = 90.0
    v = _x(1, 3, 4, seed=3, dtype=np.float16)
    got = run_mil(_sdpa, q, k, v, op="scaled_dot_product_attention", target=ct.target.iOS18)[0]
    assert got.dtype == np.float16 and np.all(np.isfinite(got))
    _close(got, _np_sdpa(q, k, v), rtol=2e-3, atol=2e-3)
