"""Emulator parity for elementwise and activation ops (group A: ``elementwise``).

Family tests convert real torch models at every target and precision and compare
the emulator with torch (tolerances from ``support``). Inputs are rounded to
binary16 first so that at FLOAT16 the input cast is exact and the comparison
measures the ops, not input quantization (this matters for discontinuous ops
like floor, round and floor_divide).

Focused tests build MIL programs directly to pin down numerics the families do
not reach: overflow to inf at fp16, stable formulas, cast semantics, integer
sign conventions.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from coremltools.converters.mil import Builder as mb
from coremltools.converters.mil.mil import types

from pytest_coreml_parity.emulator import Emulator

from . import support

ct = support.ct

# coremltools' fp16 passes cast constants such as clamp's +-inf bound or int32 extremes to
# fp16 with plain numpy astype, which warns; the converter's result is still the intended one.
pytestmark = pytest.mark.filterwarnings(
    "ignore:overflow encountered in cast:RuntimeWarning:coremltools.*"
)

TARGETS = list(support.TARGETS)
PRECISIONS = list(support.PRECISIONS)
grid = support.grid


def fp16_exact(*shape: int, seed: int, scale: float = 1.0) -> torch.Tensor:
    """Standard normal samples times ``scale``, rounded to binary16 values (held in fp32)."""
    gen = torch.Generator().manual_seed(seed)
    return (torch.randn(*shape, generator=gen) * scale).half().float()


class Fn(torch.nn.Module):
    """Wrap a function of tensors as a module (outputs may be a tuple)."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, *args: torch.Tensor) -> Any:
        return self.fn(*args)


# --------------------------------------------------------------------------- MLP


class MLP(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fc1 = torch.nn.Linear(16, 32)
        self.fc2 = torch.nn.Linear(32, 32)
        self.fc3 = torch.nn.Linear(32, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.fc1(x))
        h = F.gelu(self.fc2(h))
        h = F.silu(h) + F.gelu(h, approximate="tanh")
        return self.fc3(h)


@grid
def test_mlp_family(target: str, precision: str) -> None:
    support.assert_close_to_torch(
        MLP(), (fp16_exact(4, 16, seed=1),), target=target, precision=precision
    )


# --------------------------------------------------------------------------- elementwise


def _unary(x: torch.Tensor) -> tuple[torch.Tensor, ...]:
    a = x.abs()
    return (
        torch.exp(x),
        torch.log(a + 1),
        torch.sqrt(a),
        torch.rsqrt(a + 1),
        a,
        torch.sin(x),
        torch.cos(x),
        torch.tanh(x),
        torch.sigmoid(x),
        torch.erf(x),
        torch.floor(x),
        torch.ceil(x),
        torch.round(x),
        torch.sign(x),
        torch.square(x),
        torch.exp2(x),
        torch.log1p(a),
        torch.expm1(x),
    )


def _trig(x: torch.Tensor) -> tuple[torch.Tensor, ...]:
    c = x.clamp(-0.9, 0.9)
    return (
        torch.tan(c),
        torch.asin(c),
        torch.acos(c),
        torch.atan(x),
        torch.sinh(x),
        torch.cosh(x),
        torch.atanh(c),
    )


@grid
@pytest.mark.parametrize("fn", [_unary, _trig], ids=["unary", "trig"])
def test_unary_family(target: str, precision: str, fn: Callable[..., Any]) -> None:
    x = fp16_exact(4, 8, seed=2, scale=2.0)
    support.assert_close_to_torch(Fn(fn), (x,), target=target, precision=precision)


@grid
def test_reciprocal_family(target: str, precision: str) -> None:
    """torch.reciprocal converts to MIL ``inverse`` with epsilon 1e-4: ``1/(x + 1e-4)``.

    That is a real conversion difference of relative size 1e-4/|x|; inputs are kept
    at |x| >= 4 so it stays below the fp32 tolerance (2.5e-5 < 1e-4). The focused
    test ``test_inverse_log_rsqrt_epsilon`` checks the epsilon itself.
    """
    x = fp16_exact(4, 8, seed=3).abs() + 4
    support.assert_close_to_torch(Fn(torch.reciprocal), (x,), target=target, precision=precision)


def _binary(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, ...]:
    return (
        x + y,
        x - y,
        x * y,
        x / y,
        torch.pow(x.abs() + 0.5, y),
        x**2,
        x**3,
        torch.maximum(x, y),
        torch.minimum(x, y),
    )


@grid
def test_binary_family(target: str, precision: str) -> None:
    x = fp16_exact(4, 8, seed=4, scale=2.0)
    y = fp16_exact(4, 8, seed=5, scale=2.0)
    support.assert_close_to_torch(Fn(_binary), (x, y), target=target, precision=precision)


def _floor_ops(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, ...]:
    return (
        torch.floor_divide(x, y),
        torch.remainder(x, y),
        torch.div(x, y, rounding_mode="trunc"),
        torch.div(x, y, rounding_mode="floor"),
        torch.remainder(x, 0.75),
    )


@grid
def test_floor_divide_remainder_family(target: str, precision: str) -> None:
    """Divisors are signed powers of two, so x / y is exact at fp16 and floors agree."""
    x = fp16_exact(4, 8, seed=6, scale=8.0)
    gen = torch.Generator().manual_seed(7)
    y = 2.0 ** torch.randint(-1, 3, (4, 8), generator=gen).float()
    y = y * (torch.randint(0, 2, (4, 8), generator=gen).float() * 2 - 1)
    support.assert_close_to_torch(Fn(_floor_ops), (x, y), target=target, precision=precision)


def _int_ops(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, ...]:
    return (
        x + y,
        x - y,
        x * y,
        torch.maximum(x, y),
        torch.minimum(x, y),
        torch.remainder(x, y),
        torch.abs(x) + torch.sign(x),
        torch.pow(x, 2),
    )


@grid
def test_int32_family(target: str, precision: str) -> None:
    """int32 arithmetic keeps integer semantics; remainder takes the divisor's sign."""
    gen = torch.Generator().manual_seed(8)
    x = torch.randint(-50, 50, (4, 8), generator=gen, dtype=torch.int32)
    y = torch.randint(1, 9, (4, 8), generator=gen, dtype=torch.int32)
    y = y * (torch.randint(0, 2, (4, 8), generator=gen, dtype=torch.int32) * 2 - 1)
    out = support.assert_close_to_torch(Fn(_int_ops), (x, y), target=target, precision=precision)
    assert all(o.dtype == np.int32 for o in out)


@grid
def test_int32_floor_divide_family(target: str, precision: str) -> None:
    gen = torch.Generator().manual_seed(9)
    x = torch.randint(-50, 50, (4, 8), generator=gen, dtype=torch.int32)
    y = torch.randint(1, 9, (4, 8), generator=gen, dtype=torch.int32)
    y = y * (torch.randint(0, 2, (4, 8), generator=gen, dtype=torch.int32) * 2 - 1)
    support.assert_close_to_torch(
        Fn(torch.floor_divide), (x, y), target=target, precision=precision
    )


def _compare(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, ...]:
    return tuple(
        c.float()
        for c in (
            x == y,
            x != y,
            x < y,
            x <= y,
            x > y,
            x >= y,
            torch.logical_and(x > 0, y > 0),
            torch.logical_or(x > 0, y > 0),
            torch.logical_xor(x > 0, y > 0),
            torch.logical_not(x > y),
            (x > 0) & (y < 0),
        )
    )


@grid
def test_comparison_logical_family(target: str, precision: str) -> None:
    """Small integer-valued floats so that equality actually happens."""
    gen = torch.Generator().manual_seed(10)
    x = torch.randint(-3, 4, (4, 8), generator=gen).float()
    y = torch.randint(-3, 4, (4, 8), generator=gen).float()
    support.assert_close_to_torch(Fn(_compare), (x, y), target=target, precision=precision)


def _select_clip(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, ...]:
    return (
        torch.where(x > y, x, y),
        torch.where(x > 0, x * 2, torch.zeros_like(x) - 1),
        torch.clamp(x, -0.5, 0.5),
        torch.clamp(x, min=0.25),
        torch.clamp(x, max=-0.25),
        torch.clamp_min(y, 0.1),
    )


@grid
def test_select_clip_family(target: str, precision: str) -> None:
    x = fp16_exact(4, 8, seed=11)
    y = fp16_exact(4, 8, seed=12)
    support.assert_close_to_torch(Fn(_select_clip), (x, y), target=target, precision=precision)


def _activations(x: torch.Tensor) -> tuple[torch.Tensor, ...]:
    return (
        F.relu6(x),
        F.leaky_relu(x, 0.1),
        F.elu(x, 0.7),
        F.hardsigmoid(x),
        F.silu(x),
        F.softplus(x),
        F.softplus(x, beta=2.0),
        F.softmax(x, 1),
        F.softmax(x, -1),
        F.softsign(x),
        F.hardtanh(x, -0.5, 0.8),
        F.selu(x),
        F.mish(x),
        F.gelu(x),
        F.gelu(x, approximate="tanh"),
        F.hardswish(x),
        F.log_softmax(x, -1),
        F.threshold(x, 0.1, 0.0),
        F.tanhshrink(x),
        torch.sigmoid(x),
        torch.tanh(x),
    )


@grid
def test_activation_family(target: str, precision: str) -> None:
    x = fp16_exact(2, 3, 4, seed=13, scale=3.0)
    support.assert_close_to_torch(Fn(_activations), (x,), target=target, precision=precision)


@grid
def test_prelu_family(target: str, precision: str) -> None:
    prelu = torch.nn.PReLU(3)
    with torch.no_grad():
        prelu.weight[:] = torch.tensor([0.1, 0.2, -0.3])
    support.assert_close_to_torch(
        prelu, (fp16_exact(2, 3, 4, 5, seed=14),), target=target, precision=precision
    )


# --------------------------------------------------------------------------- cast


def _casts(x: torch.Tensor) -> tuple[torch.Tensor, ...]:
    return (
        (x * 4).to(torch.int32),
        (x > 0).float() + x.half().float(),
        x.to(torch.bool).to(torch.int32),
        (x * 4).to(torch.int32).float() * 0.5,
    )


@grid
def test_cast_family(target: str, precision: str) -> None:
    """x * 4 is exact at fp16 for these inputs, so truncation toward zero is comparable."""
    x = fp16_exact(4, 8, seed=15, scale=3.0)
    x[0, :3] = 0.0
    support.assert_close_to_torch(Fn(_casts), (x,), target=target, precision=precision)


@grid
def test_int_to_float_cast_family(target: str, precision: str) -> None:
    gen = torch.Generator().manual_seed(16)
    x = torch.randint(-1000, 1000, (4, 8), generator=gen, dtype=torch.int32)
    model = Fn(lambda v: (v.float() * 0.5, v.bool().int() + v))
    support.assert_close_to_torch(model, (x,), target=target, precision=precision)


# --------------------------------------------------------------------------- complex division


class ComplexDiv(torch.nn.Module):
    def forward(self, a: torch.Tensor) -> torch.Tensor:  # a[..., 0:4] = ra, ia, rb, ib
        ra, ia, rb, ib = a.unbind(-1)
        den = rb * rb + ib * ib
        return torch.stack([(ra * rb + ia * ib) / den, (ia * rb - ra * ib) / den], -1)


@grid
def test_complex_div_family(target: str, precision: str) -> None:
    support.assert_close_to_torch(
        ComplexDiv(), (fp16_exact(16, 4, seed=17),), target=target, precision=precision
    )


def _large_complex_inputs(seed: int, n: int = 256) -> np.ndarray:
    """|b| in 300..2000 (so rb² + ib² overflows fp16) and large numerators too.

    Some rows have |b| < 256 and small numerators so finite results are exercised.
    """
    rng = np.random.default_rng(seed)
    sign = rng.choice([-1.0, 1.0], size=(n, 4))
    mag = rng.uniform(300, 2000, size=(n, 4))
    mag[: n // 4] = rng.uniform(0.5, 150, size=(n // 4, 4))  # finite rows
    mag[n // 4 : n // 2, 2:] = rng.uniform(0.5, 150, size=(n // 4, 2))  # small b, big a
    return (sign * mag).astype(np.float16).astype(np.float32)


def complex_div_fp16_reference(a: np.ndarray) -> np.ndarray:
    """Replay the converter's op sequence with every intermediate an np.float16.

    split + squeeze, then mul, mul, add (den); mul, mul, add, real_div (real part);
    mul, mul, sub, real_div (imaginary part); stack.
    """
    h = a.astype(np.float16)
    ra, ia, rb, ib = (h[..., i] for i in range(4))
    with np.errstate(all="ignore"):
        den = np.float16(rb * rb) + np.float16(ib * ib)
        re = (np.float16(ra * rb) + np.float16(ia * ib)) / den
        im = (np.float16(ia * rb) - np.float16(ra * ib)) / den
    assert re.dtype == np.float16 and im.dtype == np.float16
    return np.stack([re, im], -1)


def ulp_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance in binary16 units in the last place (monotone integer mapping)."""

    def key(v: np.ndarray) -> np.ndarray:
        i = v.astype(np.float16).view(np.int16).astype(np.int32)
        return np.where(i < 0, -32768 - i, i)

    return np.abs(key(a) - key(b))


@pytest.mark.parametrize("target", TARGETS)
def test_complex_div_fp16_overflow_matches_float16_reference(target: str) -> None:
    """inf/nan exactly where float16 arithmetic puts them, finite values within 1 ulp."""
    a = _large_complex_inputs(seed=18)
    mlmodel = support.convert(ComplexDiv(), (torch.from_numpy(a),), target=target, precision="fp16")
    (got,) = support.emulator_outputs(mlmodel, (torch.from_numpy(a),))
    assert got.dtype == (np.float32 if target == "iOS15" else np.float16)
    want = complex_div_fp16_reference(a)
    finite_got, finite_want = np.isfinite(got), np.isfinite(want)
    assert finite_want.any() and (~finite_want).any(), "inputs must exercise both cases"
    np.testing.assert_array_equal(finite_got, finite_want)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_array_equal(got[np.isinf(got)], want[np.isinf(want)].astype(got.dtype))
    assert ulp_distance(got[finite_got], want[finite_want]).max() <= 1


@pytest.mark.parametrize("target", TARGETS)
def test_complex_div_fp32_large_inputs_finite(target: str) -> None:
    a = torch.from_numpy(_large_complex_inputs(seed=19))
    (got,) = support.assert_close_to_torch(ComplexDiv(), (a,), target=target, precision="fp32")
    assert np.isfinite(got).all()


# --------------------------------------------------------------------------- focused MIL tests


def run_mil(
    build: Callable[..., Any],
    inputs: dict[str, np.ndarray],
    *,
    dtype: Any = types.fp32,
    target: Any = ct.target.iOS17,
    expect_op: str | None = None,
) -> np.ndarray:
    """Convert a MIL function (first input of `dtype`) and run it on the emulator (FLOAT32: no added casts)."""
    (_name, value), *rest = inputs.items()
    specs = [mb.TensorSpec(shape=value.shape, dtype=dtype)]
    specs += [mb.TensorSpec(shape=v.shape, dtype=_mil_dtype(v)) for _, v in rest]
    prog = mb.program(input_specs=specs, opset_version=target)(build)
    mlmodel = ct.convert(
        prog,
        convert_to="mlprogram",
        minimum_deployment_target=target,
        compute_precision=ct.precision.FLOAT32,
    )
    emulator = Emulator(mlmodel)
    if expect_op is not None:
        assert expect_op in {op.op_type for op in emulator.ops}, [op.op_type for op in emulator.ops]
    feed = {spec.name: v for spec, v in zip(emulator.inputs, inputs.values(), strict=True)}
    (out,) = emulator.run(feed).values()
    return out


def _mil_dtype(v: np.ndarray) -> Any:
    return {"float16": types.fp16, "float32": types.fp32, "int32": types.int32, "bool": types.bool}[
        v.dtype.name
    ]


def _op(name: str, **params: Any) -> Callable[..., Any]:
    """A one-input MIL builder for op ``name`` (bound now, not at call time)."""
    return lambda x: getattr(mb, name)(x=x, **params)


def _logical_as_int(name: str) -> Callable[..., Any]:
    return lambda x, y: mb.cast(x=getattr(mb, name)(x=x, y=y), dtype="int32")


def _exact16(values: Any) -> np.ndarray:
    return np.asarray(values, dtype=np.float16)


@pytest.mark.parametrize("op", ["add", "sub", "mul", "real_div"])
def test_fp16_binary_is_correctly_rounded(op: str) -> None:
    """Against float64 (exact for + - *; correctly rounded / then one harmless rounding)."""
    rng = np.random.default_rng(20)
    x = _exact16(rng.standard_normal(4096) * np.exp2(rng.integers(-14, 15, 4096)))
    y = _exact16(rng.standard_normal(4096) * np.exp2(rng.integers(-14, 15, 4096)))
    got = run_mil(lambda x, y: getattr(mb, op)(x=x, y=y), {"x": x, "y": y}, dtype=types.fp16)
    with np.errstate(all="ignore"):
        exact = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "real_div": np.divide}[op](
            x.astype(np.float64), y.astype(np.float64)
        )
        want = exact.astype(np.float16)
    assert got.dtype == np.float16
    np.testing.assert_array_equal(got, want)
    if op == "mul":
        assert np.isinf(got).any(), "products past 65504 must overflow to inf"


def test_division_by_zero_is_ieee() -> None:
    x = _exact16([1.0, -1.0, 0.0, np.inf, 2.0])
    y = _exact16([0.0, 0.0, 0.0, 0.0, -0.0])
    got = run_mil(lambda x, y: mb.real_div(x=x, y=y), {"x": x, "y": y}, dtype=types.fp16)
    np.testing.assert_array_equal(got, _exact16([np.inf, -np.inf, np.nan, np.inf, -np.inf]))


def test_int32_floor_div_and_mod_sign_conventions() -> None:
    x = np.array([7, -7, 7, -7, 0, 6], dtype=np.int32)
    y = np.array([2, 2, -2, -2, 3, -3], dtype=np.int32)
    fd = run_mil(lambda x, y: mb.floor_div(x=x, y=y), {"x": x, "y": y}, dtype=types.int32)
    md = run_mil(lambda x, y: mb.mod(x=x, y=y), {"x": x, "y": y}, dtype=types.int32)
    np.testing.assert_array_equal(fd, [3, -4, -4, 3, 0, -2])  # toward -inf
    np.testing.assert_array_equal(md, [1, 1, -1, -1, 0, 0])  # sign of the divisor
    assert fd.dtype == np.int32 and md.dtype == np.int32
    np.testing.assert_array_equal(fd * y + md, x)


def test_float_floor_div_and_mod() -> None:
    x = np.array([7.5, -7.5, 7.5, -7.5, 1.0], dtype=np.float32)
    y = np.array([2.0, 2.0, -2.0, -2.0, 0.0], dtype=np.float32)
    fd = run_mil(lambda x, y: mb.floor_div(x=x, y=y), {"x": x, "y": y})
    md = run_mil(lambda x, y: mb.mod(x=x, y=y), {"x": x, "y": y})
    np.testing.assert_array_equal(fd[:4], [3.0, -4.0, -4.0, 3.0])
    np.testing.assert_array_equal(md[:4], [1.5, 0.5, -0.5, -1.5])
    assert np.isinf(fd[4]) and np.isnan(md[4])


def test_int32_division_by_zero_raises() -> None:
    from pytest_coreml_parity.emulator import KernelError

    x = np.array([1, 2], dtype=np.int32)
    y = np.array([1, 0], dtype=np.int32)
    with pytest.raises(KernelError, match="by zero"):
        run_mil(lambda x, y: mb.floor_div(x=x, y=y), {"x": x, "y": y}, dtype=types.int32)


def test_int32_pow_and_exp2() -> None:
    x = np.array([-3, 0, 2, 5], dtype=np.int32)
    got = run_mil(lambda x: mb.pow(x=x, y=np.int32(3)), {"x": x}, dtype=types.int32)
    np.testing.assert_array_equal(got, [-27, 0, 8, 125])
    assert got.dtype == np.int32
    got = run_mil(
        lambda x: mb.exp2(x=x), {"x": np.array([0, 3, 10], dtype=np.int32)}, dtype=types.int32
    )
    np.testing.assert_array_equal(got, [1, 8, 1024])


def test_fp16_exp_and_pow_overflow_to_inf() -> None:
    x = _exact16([10.0, 11.0, 12.0, -20.0])
    got = run_mil(lambda x: mb.exp(x=x), {"x": x}, dtype=types.fp16)
    assert np.isfinite(got[:2]).all() and got[2] == np.inf and got[3] == 0.0
    got = run_mil(lambda x: mb.pow(x=x, y=np.float16(5.0)), {"x": x}, dtype=types.fp16)
    assert (got[:3] == np.inf).all()


def _cast_to(dtype: str) -> Callable[..., Any]:
    return lambda x: mb.cast(x=x, dtype=dtype)


def test_cast_float_to_int_truncates_and_saturates() -> None:
    """Documented assumption: truncation toward zero, saturation, nan -> 0 (ARM FCVTZS)."""
    x = np.array([2.7, -2.7, 0.5, -0.5, 3e9, -3e9, np.nan, np.inf, -np.inf], dtype=np.float32)
    got = run_mil(_cast_to("int32"), {"x": x})
    i32 = np.iinfo(np.int32)
    np.testing.assert_array_equal(got, [2, -2, 0, 0, i32.max, i32.min, 0, i32.max, i32.min])
    assert got.dtype == np.int32


@pytest.mark.parametrize(
    ("dtype", "want"),
    [
        ("int8", [2, -2, 127, -128, 0]),
        ("uint8", [2, 0, 255, 0, 0]),
        ("int16", [2, -2, 300, -300, 0]),
    ],
)
def test_cast_float_to_small_ints_ios17(dtype: str, want: list[int]) -> None:
    x = np.array([2.7, -2.7, 300.0, -300.0, np.nan], dtype=np.float32)

    def build(x: Any) -> Any:
        # Small int types cannot be program outputs; widen back to int32.
        return mb.cast(x=mb.cast(x=x, dtype=dtype), dtype="int32")

    got = run_mil(build, {"x": x}, expect_op="cast")
    np.testing.assert_array_equal(got, want)


def test_cast_to_fp16_overflows_and_bool_casts() -> None:
    x = np.array([70000.0, -70000.0, 65504.0, 1e-8, 0.0, np.nan], dtype=np.float32)
    got = run_mil(
        lambda x: mb.cast(x=mb.cast(x=x, dtype="fp16"), dtype="fp32"), {"x": x}, expect_op="cast"
    )
    with np.errstate(over="ignore"):
        np.testing.assert_array_equal(got, x.astype(np.float16).astype(np.float32))
    assert got[0] == np.inf and got[1] == -np.inf and got[3] == 0.0
    got = run_mil(lambda x: mb.cast(x=mb.cast(x=x, dtype="bool"), dtype="int32"), {"x": x})
    np.testing.assert_array_equal(got, [1, 1, 1, 1, 0, 1])


def test_select_broadcasts_and_keeps_int() -> None:
    cond = np.array([[True], [False]])
    a = np.arange(6, dtype=np.int32).reshape(2, 3)
    got = run_mil(
        lambda c, a: mb.select(cond=c, a=a, b=np.int32(-1)), {"c": cond, "a": a}, dtype=types.bool
    )
    np.testing.assert_array_equal(got, [[0, 1, 2], [-1, -1, -1]])
    assert got.dtype == np.int32


def test_threshold_clip_int_and_float() -> None:
    x = np.array([-5, 0, 5], dtype=np.int32)
    got = run_mil(lambda x: mb.threshold(x=x, alpha=np.int32(1)), {"x": x}, dtype=types.int32)
    np.testing.assert_array_equal(got, [1, 1, 5])
    f = np.array([-5.0, 0.3, 5.0, np.nan], dtype=np.float32)
    got = run_mil(lambda x: mb.clip(x=x, alpha=-1.0, beta=1.0), {"x": f})
    np.testing.assert_array_equal(got[:3], np.array([-1.0, 0.3, 1.0], dtype=np.float32))
    assert np.isnan(got[3])


def test_inverse_log_rsqrt_epsilon() -> None:
    x = np.array([0.0, 1.0, 4.0], dtype=np.float32)
    got = run_mil(lambda x: mb.inverse(x=x), {"x": x})
    np.testing.assert_allclose(got, 1 / (x + np.float32(1e-4)), rtol=1e-7)
    got = run_mil(lambda x: mb.inverse(x=x, epsilon=0.5), {"x": x})
    np.testing.assert_allclose(got, 1 / (x + 0.5), rtol=1e-7)
    got = run_mil(lambda x: mb.log(x=x, epsilon=1.0), {"x": x})
    np.testing.assert_allclose(got, np.log1p(x), rtol=1e-6)
    got = run_mil(lambda x: mb.log(x=x), {"x": x})
    assert np.isfinite(got[0]) and got[0] < -100  # log(1e-45), not -inf
    got = run_mil(lambda x: mb.rsqrt(x=x), {"x": x})
    np.testing.assert_allclose(got, 1 / np.sqrt(x.astype(np.float64) + 1e-12), rtol=1e-6)


def test_round_is_half_to_even_and_sign() -> None:
    x = np.array([0.5, 1.5, 2.5, -0.5, -1.5, 0.0, -3.2], dtype=np.float32)
    np.testing.assert_array_equal(
        run_mil(lambda x: mb.round(x=x), {"x": x}), [0.0, 2.0, 2.0, -0.0, -2.0, 0.0, -3.0]
    )
    np.testing.assert_array_equal(
        run_mil(lambda x: mb.sign(x=x), {"x": x}), [1, 1, 1, -1, -1, 0, -1]
    )


def _erf64(x: np.ndarray) -> np.ndarray:
    return np.vectorize(math.erf)(x.astype(np.float64))


@pytest.mark.parametrize("mode", ["EXACT", "TANH_APPROXIMATION", "SIGMOID_APPROXIMATION"])
def test_gelu_modes_against_float64(mode: str) -> None:
    x = np.concatenate([np.linspace(-12, 12, 97), [-3e4, 3e4, 60000.0, -60000.0]]).astype(
        np.float32
    )
    got = run_mil(lambda x: mb.gelu(x=x, mode=mode), {"x": x}, expect_op="gelu")
    w = x.astype(np.float64)
    if mode == "EXACT":
        want = 0.5 * w * (1 + _erf64(w / math.sqrt(2)))
    elif mode == "TANH_APPROXIMATION":
        want = 0.5 * w * (1 + np.tanh(math.sqrt(2 / math.pi) * (w + 0.044715 * w**3)))
    else:
        with np.errstate(over="ignore"):
            want = w / (1 + np.exp(-1.702 * w))
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_gelu_fp16_large_inputs_do_not_overflow_inside() -> None:
    """x³ at x = 60000 overflows fp16 (and x = 1e13 would overflow fp32); the result is x."""
    x = _exact16([60000.0, -60000.0, 300.0, -300.0, 1.0])
    for mode in ("EXACT", "TANH_APPROXIMATION", "SIGMOID_APPROXIMATION"):
        got = run_mil(_op("gelu", mode=mode), {"x": x}, dtype=types.fp16)
        np.testing.assert_array_equal(got[:4], _exact16([60000.0, 0.0, 300.0, 0.0]))


def test_stable_sigmoid_softplus_silu_at_extremes() -> None:
    x = _exact16([-65504.0, -100.0, -20.0, 0.0, 20.0, 100.0, 65504.0])
    sig = run_mil(lambda x: mb.sigmoid(x=x), {"x": x}, dtype=types.fp16)
    np.testing.assert_array_equal(sig, _exact16([0.0, 0.0, 2.0611537e-09, 0.5, 1.0, 1.0, 1.0]))
    sp = run_mil(lambda x: mb.softplus(x=x), {"x": x}, dtype=types.fp16)
    np.testing.assert_array_equal(
        sp, _exact16([0.0, 0.0, 2.0611537e-09, math.log(2), 20.0, 100.0, 65504.0])
    )
    si = run_mil(lambda x: mb.silu(x=x), {"x": x}, dtype=types.fp16)
    assert np.isfinite(si).all() and si[-1] == 65504.0 and si[0] == 0.0


def test_softmax_large_logits_fp16() -> None:
    x = _exact16([[60000.0, 59990.0, -60000.0], [1.0, 2.0, 3.0]])
    got = run_mil(lambda x: mb.softmax(x=x, axis=-1), {"x": x}, dtype=types.fp16)
    w = x.astype(np.float64)
    e = np.exp(w - w.max(-1, keepdims=True))
    np.testing.assert_allclose(got, e / e.sum(-1, keepdims=True), rtol=1e-3, atol=1e-7)
    got = run_mil(lambda x: mb.softmax(x=x, axis=0), {"x": x}, dtype=types.fp16)
    np.testing.assert_array_equal(got[:, 0], _exact16([1.0, 0.0]))


@pytest.mark.parametrize(
    ("build", "ref"),
    [
        (lambda x: mb.relu(x=x), lambda x: np.maximum(x, 0)),
        (lambda x: mb.relu6(x=x), lambda x: np.clip(x, 0, 6)),
        (lambda x: mb.leaky_relu(x=x, alpha=0.2), lambda x: np.where(x >= 0, x, 0.2 * x)),
        (lambda x: mb.elu(x=x, alpha=0.5), lambda x: np.where(x > 0, x, 0.5 * np.expm1(x))),
        (
            lambda x: mb.sigmoid_hard(x=x, alpha=0.25, beta=0.4),
            lambda x: np.clip(0.25 * x + 0.4, 0, 1),
        ),
        (lambda x: mb.softsign(x=x), lambda x: x / (1 + np.abs(x))),
        (lambda x: mb.scaled_tanh(x=x, alpha=2.0, beta=0.5), lambda x: 2 * np.tanh(0.5 * x)),
        (
            lambda x: mb.clamped_relu(x=x, alpha=0.1, beta=3.0),
            lambda x: np.minimum(3.0, np.where(x >= 0, x, 0.1 * x)),
        ),
        (lambda x: mb.linear_activation(x=x, alpha=1.5, beta=-2.0), lambda x: 1.5 * x - 2.0),
        (lambda x: mb.thresholded_relu(x=x, alpha=0.5), lambda x: np.where(x >= 0.5, x, 0.0)),
        (
            lambda x: mb.softplus_parametric(
                x=x,
                alpha=np.array([1.0, 2.0, 0.5], np.float32),
                beta=np.array([1.0, 0.5, 3.0], np.float32),
            ),
            lambda x: (
                np.array([1.0, 2.0, 0.5]).reshape(1, 3, 1, 1)
                * np.logaddexp(0, np.array([1.0, 0.5, 3.0]).reshape(1, 3, 1, 1) * x)
            ),
        ),
        (
            lambda x: mb.prelu(x=x, alpha=np.array([0.1, -0.2, 0.3], np.float32)),
            lambda x: np.where(x > 0, x, np.array([0.1, -0.2, 0.3]).reshape(1, 3, 1, 1) * x),
        ),
    ],
)
@pytest.mark.parametrize("opset", ["iOS15", "iOS17"])
def test_activation_kernels_against_numpy(
    build: Callable[..., Any], ref: Callable[..., Any], opset: str
) -> None:
    x = np.linspace(-8, 8, 2 * 3 * 4 * 5).reshape(2, 3, 4, 5).astype(np.float32)
    got = run_mil(build, {"x": x}, target=support.TARGETS[opset])
    np.testing.assert_allclose(got, ref(x.astype(np.float64)), rtol=2e-6, atol=1e-6)


@pytest.mark.parametrize(
    ("name", "ref"),
    [
        ("exp", np.exp),
        ("exp2", np.exp2),
        ("sqrt", np.sqrt),
        ("sin", np.sin),
        ("cos", np.cos),
        ("tan", np.tan),
        ("tanh", np.tanh),
        ("sinh", np.sinh),
        ("cosh", np.cosh),
        ("atan", np.arctan),
        ("floor", np.floor),
        ("ceil", np.ceil),
        ("abs", np.abs),
        ("square", np.square),
        ("erf", _erf64),
    ],
)
def test_unary_kernels_against_numpy(name: str, ref: Callable[..., Any]) -> None:
    x = np.linspace(0.01, 4, 64).astype(np.float32) * np.where(np.arange(64) % 2, 1, -1)
    x = np.abs(x) if name == "sqrt" else x
    got = run_mil(lambda x: getattr(mb, name)(x=x), {"x": x}, expect_op=name)
    np.testing.assert_allclose(got, ref(x.astype(np.float64)), rtol=2e-6, atol=1e-7)


def test_inverse_trig_kernels() -> None:
    x = np.linspace(-0.99, 0.99, 33).astype(np.float32)
    for name, ref in (("asin", np.arcsin), ("acos", np.arccos), ("atanh", np.arctanh)):
        got = run_mil(_op(name), {"x": x})
        np.testing.assert_allclose(got, ref(x.astype(np.float64)), rtol=2e-6, atol=1e-7)


def test_logical_ops() -> None:
    a = np.array([True, True, False, False])
    b = np.array([True, False, True, False])
    for name, want in (
        ("logical_and", [1, 0, 0, 0]),
        ("logical_or", [1, 1, 1, 0]),
        ("logical_xor", [0, 1, 1, 0]),
    ):
        got = run_mil(_logical_as_int(name), {"a": a, "b": b}, dtype=types.bool)
        np.testing.assert_array_equal(got, want)
    got = run_mil(
        lambda x: mb.cast(x=mb.logical_not(x=x), dtype="int32"), {"a": a}, dtype=types.bool
    )
    np.testing.assert_array_equal(got, [0, 0, 1, 1])


def test_int32_real_div_where_the_quotient_is_unambiguous() -> None:
    """coremltools' test pins int32(x / y) for non-negative quotients; a negative inexact
    quotient (truncate or floor?) is undocumented, so the emulator refuses it."""
    from pytest_coreml_parity.emulator import KernelError, UnspecifiedResultError

    x, y = np.array([10, 50, -12, 7], np.int32), np.array([11, 15, -5, -7], np.int32)
    got = run_mil(lambda x, y: mb.real_div(x=x, y=y), {"x": x, "y": y}, dtype=types.int32)
    np.testing.assert_array_equal(got, [0, 3, 2, -1])
    assert got.dtype == np.int32
    x = np.array([-7, 1, 1, 1], np.int32)
    with pytest.raises(KernelError, match="negative, inexact quotient") as info:
        run_mil(lambda x, y: mb.real_div(x=x, y=y), {"x": x, "y": np.full(4, 2, np.int32)}, dtype=types.int32)
    assert isinstance(info.value.__cause__, UnspecifiedResultError)


def test_relu_propagates_nan_and_keeps_infinities() -> None:
    x = np.array([np.nan, -1.0, 2.0, -np.inf, np.inf, 0.0], dtype=np.float32)
    out = run_mil(_op("relu"), {"x": x}, expect_op="relu")
    np.testing.assert_array_equal(out, [np.nan, 0.0, 2.0, 0.0, np.inf, 0.0])


def test_softmax_fast_path_is_bit_identical_to_the_numpy_formula() -> None:
    """softmax on a large array takes torch's amax and works in place: the same float32
    operations as ``exp(x - max) / sum``, so the same bits, nan and inf rows included."""
    from pytest_coreml_parity.emulator.kernels._torch import TORCH_MIN_SIZE
    from pytest_coreml_parity.emulator.kernels.activation import softmax

    rng = np.random.default_rng(23)
    x = (rng.standard_normal((4, 8, 64)) * 40).astype(np.float32)
    assert x.size >= TORCH_MIN_SIZE
    x[0, 0, :4] = [np.inf, np.nan, -np.inf, -0.0]
    x[1, 1, :] = -np.inf
    before = x.copy()
    with np.errstate(all="ignore"):
        for arr in (x, x.transpose(2, 0, 1)):
            for axis in range(arr.ndim):
                got = softmax(None, arr, np.int32(axis))
                e = np.exp(arr - np.max(arr, axis=axis, keepdims=True))
                want = e / np.sum(e, axis=axis, keepdims=True, dtype=np.float32)
                np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))
    np.testing.assert_array_equal(x, before)  # the input is not written
