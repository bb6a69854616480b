"""The ``fp16-sequential`` profile: fp16 matmul/linear/einsum accumulate in fp16, left to right.

The rule, measured on Apple's Core AI interpreter (tests/coreai/test_accumulation.py): per
output element, acc = fp16(0); for k ascending, acc = fp16(acc + fp16(a[i,k] * b[k,j])). The
reference here is a scalar loop over Python floats (a product or sum of two binary16 numbers
is exact in a double, so one rounding to fp16 is the fp16 operation), independent of the
kernel's vectorized torch and numpy paths. The default profile must stay as it was.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest

from pytest_coreml_parity.emulator import FP16_EXECUTION_MODES, Emulator, emulate
from pytest_coreml_parity.emulator.kernels.linear import sequential_fp16_matmul

from . import support
from .support import ct

SEQ = "fp16-sequential"


def fp16(value: float) -> float:
    """One rounding of ``value`` to binary16 (overflow to inf)."""
    with np.errstate(over="ignore"):
        return float(np.float16(value))


def reference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a @ b (batch dims broadcast) by the stated rule, one scalar at a time."""
    a = a.astype(np.float16).astype(np.float64)
    b = b.astype(np.float16).astype(np.float64)
    batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    a = np.broadcast_to(a, (*batch, *a.shape[-2:]))
    b = np.broadcast_to(b, (*batch, *b.shape[-2:]))
    out = np.empty((*batch, a.shape[-2], b.shape[-1]))
    for idx in np.ndindex(*batch):
        for i, j in itertools.product(range(a.shape[-2]), range(b.shape[-1])):
            acc = 0.0
            for k in range(a.shape[-1]):
                acc = fp16(acc + fp16(float(a[idx][i, k]) * float(b[idx][k, j])))
            out[idx][i, j] = acc
    return out.astype(np.float16)


def same_bits(got: np.ndarray, want: np.ndarray) -> None:
    """Equal as binary16 bit patterns (-0 vs +0 counts); nan in the same places (payloads
    and signs of nan are not modelled: IEEE leaves them to the implementation)."""
    got16, want16 = np.asarray(got).astype(np.float16), np.asarray(want).astype(np.float16)
    assert got16.shape == want16.shape
    np.testing.assert_array_equal(np.isnan(got16), np.isnan(want16))
    keep = ~np.isnan(want16)
    np.testing.assert_array_equal(got16[keep].view(np.uint16), want16[keep].view(np.uint16))


def rand(*shape: int, seed: int, scale: float = 4.0) -> np.ndarray:
    values = np.random.default_rng(seed).standard_normal(shape) * scale
    return values.astype(np.float16).astype(np.float32)


def mil_model(body: Any, *arrays: np.ndarray) -> Any:
    """A MIL program of ``body`` on typed inputs (fp16 arrays -> fp16 inputs), iOS17."""
    from coremltools.converters.mil import Builder as mb
    from coremltools.converters.mil.mil import types

    dtypes = {np.dtype(np.float16): types.fp16, np.dtype(np.float32): types.fp32}
    specs = [mb.TensorSpec(shape=a.shape, dtype=dtypes[a.dtype]) for a in arrays]
    run = {1: lambda x0: body(x0), 2: lambda x0, x1: body(x0, x1)}[len(arrays)]
    prog = mb.program(input_specs=specs, opset_version=ct.target.iOS17)(run)
    return support.convert_program(prog, ct.target.iOS17)


def run(mlmodel: Any, *arrays: np.ndarray, profile: str = SEQ) -> np.ndarray:
    emulator = Emulator(mlmodel, fp16_execution=profile)
    feed = {spec.name: a for spec, a in zip(emulator.inputs, arrays, strict=True)}
    out: np.ndarray = emulator.run(feed)[emulator.output_names[0]]
    return out


def _mb() -> Any:
    from coremltools.converters.mil import Builder as mb

    return mb


FACTS = [  # (a row, b column value, result): measured on Core AI's interpreter
    ([1.0] * 4096, 1.0, 2048.0),  # 2048 + 1 rounds back to 2048
    ([2048.0, 1, 1, 1, 1], 1.0, 2048.0),  # every +1 lost
    ([1.0, 1, 1, 1, 2048], 1.0, 2052.0),  # small terms first survive
    ([250.0, 250, -250], 250.0, np.inf),  # 62500 + 62500 overflows; inf persists
]


@pytest.mark.parametrize(("row", "col", "want"), FACTS, ids=["4096-ones", "big-first", "big-last", "overflow"])
@pytest.mark.parametrize("use_torch", [True, False], ids=["torch", "numpy"])
def test_kernel_reproduces_the_measured_facts(
    row: list[float], col: float, want: float, use_torch: bool
) -> None:
    a = np.array([row], np.float32)
    b = np.full((len(row), 1), col, np.float32)
    got = sequential_fp16_matmul(a, b, use_torch=use_torch)
    assert got.dtype == np.float32 and float(got[0, 0]) == want


@pytest.mark.parametrize(("row", "col", "want"), FACTS, ids=["4096-ones", "big-first", "big-last", "overflow"])
def test_matmul_op_reproduces_the_facts_only_under_the_profile(
    row: list[float], col: float, want: float
) -> None:
    """Through a real fp16 program; ``typed`` (fp32 accumulation) gives the exact sum."""
    a = np.array([row], np.float16)
    b = np.full((len(row), 1), col, np.float16)
    mlmodel = mil_model(lambda x, y: _mb().matmul(x=x, y=y), a, b)
    got = run(mlmodel, a, b)
    assert got.dtype == np.float16 and float(got[0, 0]) == want
    exact = float(np.float16(np.dot(np.array(row, np.float64), np.full(len(row), col))))
    assert float(run(mlmodel, a, b, profile="typed")[0, 0]) == exact


@pytest.mark.parametrize(
    ("xs", "ys", "scale"),
    [
        ((5, 64), (64, 3), 4.0),
        ((2, 1, 4, 33), (3, 33, 2), 4.0),  # broadcast batch dims
        ((64,), (64, 3), 4.0),  # rank-1 x
        ((4, 16), (16,), 4.0),  # rank-1 y
        ((4, 16), (16, 3), 1e-3),  # products in the subnormal range
        ((4, 16), (16, 3), 300.0),  # products and partial sums overflow: inf and nan
        ((3, 0), (0, 2), 1.0),  # empty sum: +0
    ],
)
@pytest.mark.parametrize("use_torch", [True, False], ids=["torch", "numpy"])
def test_kernel_matches_the_reference_loop(
    xs: tuple[int, ...], ys: tuple[int, ...], scale: float, use_torch: bool
) -> None:
    x, y = rand(*xs, seed=1, scale=scale), rand(*ys, seed=2, scale=scale)
    x2 = x[None, :] if x.ndim == 1 else x
    y2 = y[:, None] if y.ndim == 1 else y
    want = reference(x2, y2)
    if x.ndim == 1:
        want = want[..., 0, :]
    if y.ndim == 1:
        want = want[..., 0]
    with np.errstate(all="ignore"):
        same_bits(sequential_fp16_matmul(x, y, use_torch=use_torch), want)


@pytest.mark.parametrize(
    ("xs", "ys", "tx", "ty"),
    [
        ((4, 24), (24, 5), False, False),
        ((24, 4), (24, 5), True, False),
        ((4, 24), (5, 24), False, True),
        ((2, 1, 24, 3), (5, 5, 24), True, True),  # broadcast batch dims, both transposed
    ],
)
def test_matmul_variants_under_the_profile(
    xs: tuple[int, ...], ys: tuple[int, ...], tx: bool, ty: bool
) -> None:
    x, y = rand(*xs, seed=3).astype(np.float16), rand(*ys, seed=4).astype(np.float16)
    body = lambda a, b: _mb().matmul(x=a, y=b, transpose_x=tx, transpose_y=ty)  # noqa: E731
    got = run(mil_model(body, x, y), x, y)
    a = np.swapaxes(x, -1, -2) if tx else x
    b = np.swapaxes(y, -1, -2) if ty else y
    same_bits(got, reference(a, b))


def test_linear_adds_the_bias_after_the_sequential_dot() -> None:
    """bias 2048 after a dot of four ones gives 2052; added first it would give 2048."""
    x = np.ones((1, 4), np.float16)
    weight, bias = np.ones((1, 4), np.float16), np.array([2048.0], np.float16)
    body = lambda a: _mb().linear(x=a, weight=weight, bias=bias)  # noqa: E731
    mlmodel = mil_model(body, x)
    assert [op.op_type for op in Emulator(mlmodel).ops] == ["linear"]
    assert float(run(mlmodel, x)[0, 0]) == 2052.0


@pytest.mark.parametrize("shape", [(6, 48), (2, 3, 48)])
def test_linear_matches_the_reference_loop(shape: tuple[int, ...]) -> None:
    x = rand(*shape, seed=5).astype(np.float16)
    weight = rand(7, 48, seed=6, scale=1.0).astype(np.float16)
    bias = rand(7, seed=7, scale=8.0).astype(np.float16)
    mlmodel = mil_model(lambda a: _mb().linear(x=a, weight=weight, bias=bias), x)
    dot = reference(x.astype(np.float32), weight.T.astype(np.float32))
    want = (dot.astype(np.float32) + bias.astype(np.float32)).astype(np.float16)
    same_bits(run(mlmodel, x), want)


def test_einsum_op_matches_the_reference_loop() -> None:
    """MIL's 'nchw,nwhu->nchu' is a batched matmul over n and h: the same rule applies."""
    x, y = rand(2, 3, 4, 20, seed=8).astype(np.float16), rand(2, 20, 4, 5, seed=9).astype(np.float16)
    body = lambda a, b: _mb().einsum(values=(a, b), equation="nchw,nwhu->nchu")  # noqa: E731
    mlmodel = mil_model(body, x, y)
    assert [op.op_type for op in Emulator(mlmodel).ops] == ["einsum"]
    want = reference(np.transpose(x, (0, 2, 1, 3)), np.transpose(y, (0, 2, 1, 3)))
    same_bits(run(mlmodel, x, y), np.transpose(want, (0, 2, 1, 3)))


def test_fp32_ops_are_untouched_by_the_profile() -> None:
    """Only ops declaring an fp16 output accumulate in fp16."""
    a, b = np.ones((1, 4096), np.float32), np.ones((4096, 1), np.float32)
    mlmodel = mil_model(lambda x, y: _mb().matmul(x=x, y=y), a, b)
    got = run(mlmodel, a, b)
    assert got.dtype == np.float32 and float(got[0, 0]) == 4096.0


def test_reductions_still_accumulate_wide() -> None:
    """Core AI's reduce_sum (and conv) accumulate wider: the profile leaves them as typed."""
    ones = np.ones((1, 4096), np.float16)
    mlmodel = mil_model(lambda x: _mb().reduce_sum(x=x, axes=[1]), ones)
    assert float(run(mlmodel, ones)[0]) == 4096.0


def test_profiles_are_named_and_checked() -> None:
    assert FP16_EXECUTION_MODES == ("typed", "float32", SEQ)
    a = np.ones((1, 8), np.float16)
    mlmodel = mil_model(lambda x: _mb().reduce_sum(x=x, axes=[1]), a)
    with pytest.raises(ValueError, match="fp16-sequential"):
        Emulator(mlmodel, fp16_execution="fp16_sequential")


def test_emulate_caches_one_plan_per_profile() -> None:
    """The one-call form must not hand a typed plan to a sequential call, or back."""
    a, b = np.ones((1, 4096), np.float16), np.ones((4096, 1), np.float16)
    mlmodel = mil_model(lambda x, y: _mb().matmul(x=x, y=y), a, b)
    feed = {"x0": a, "x1": b}
    (typed,) = emulate(mlmodel, feed).values()
    (sequential,) = emulate(mlmodel, feed, fp16_execution=SEQ).values()
    (again,) = emulate(mlmodel, feed).values()
    assert (float(typed[0, 0]), float(sequential[0, 0]), float(again[0, 0])) == (4096, 2048, 4096)


def test_settings_list_the_emulator_profiles() -> None:
    """settings.py stays cheap to import, so it keeps its own copy of the names."""
    from pytest_coreml_parity.settings import EMULATOR_PROFILES

    assert EMULATOR_PROFILES == FP16_EXECUTION_MODES


PLUGIN_TESTS = """
import pytest, torch


class MatMul(torch.nn.Module):
    def forward(self, a, b):
        return a @ b


@pytest.fixture
def torch_model():
    return MatMul().eval()


@pytest.fixture
def example_inputs():
    return (torch.ones(1, 4096), torch.ones(4096, 1))


@pytest.mark.coreml(precisions=["fp16"], target="iOS17", emulator_profile="fp16-sequential")
def test_marker(coreml_model, example_inputs):
    assert float(coreml_model(*example_inputs)[0, 0]) == 2048.0


@pytest.mark.coreml(precisions=["fp16"], target="iOS17")
def test_session(coreml_model, example_inputs, request):
    sequential = request.config.getini("coreml_emulator_profile") == "fp16-sequential"
    assert float(coreml_model(*example_inputs)[0, 0]) == (2048.0 if sequential else 4096.0)
"""


def test_plugin_runs_the_emulator_under_the_chosen_profile(pytester: pytest.Pytester) -> None:
    """Marker, ini and the default reach the emulator backend; the header names the profile."""
    pytester.makepyfile(PLUGIN_TESTS)
    cache = f"--coreml-cache-dir={pytester.path / 'cache'}"
    typed = pytester.runpytest_subprocess("--coreml-backend=emulator", cache, "-p", "no:cacheprovider")
    typed.assert_outcomes(passed=2)
    typed.stdout.fnmatch_lines(["coreml-parity: emulator profile typed (default)"])
    pytester.makeini("[pytest]\ncoreml_emulator_profile = fp16-sequential\n")
    sequential = pytester.runpytest_subprocess(
        "--coreml-backend=emulator", cache, "-p", "no:cacheprovider", "-v"
    )
    sequential.assert_outcomes(passed=2)
    sequential.stdout.fnmatch_lines(
        [
            "coreml-parity: emulator profile fp16-sequential (ini coreml_emulator_profile)",
            "*::test_marker[[]fp16[]] PASSED*",
        ]
    )
    bad = pytester.runpytest_subprocess("--coreml-emulator-profile=fp16", "-p", "no:cacheprovider")
    bad.stderr.fnmatch_lines(["*--coreml-emulator-profile: unknown emulator profile 'fp16'*"])


def test_the_float32_profile_returns_an_overflowing_fp16_output_as_inf_without_a_warning() -> None:
    """Under ``float32`` an fp16-typed value is held unrounded; a small output past 65504
    becomes inf in its declared dtype, as on a device, not numpy's RuntimeWarning (an error
    under ``filterwarnings = error``)."""
    import warnings

    mb = _mb()
    a = np.array([[300.0, 1.0]], np.float16)
    mlmodel = mil_model(lambda x: mb.mul(x=x, y=x), a)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = run(mlmodel, a, profile="float32")
    assert out.dtype == np.float16
    assert np.isinf(out[0, 0]) and out[0, 1] == 1.0
