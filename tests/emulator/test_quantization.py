"""Activation quantization (iOS17 ``quantize`` / ``dequantize``): emulator vs numpy and torch.

Builder programs are converted with real coremltools and run through the real
emulator, against numpy references written here (float64 arithmetic, so they
share no code path with the float32 kernels):

* ``quantize``: ``clip(round_half_even(x / scale) + zero_point)``. For fp16
  operands the reference quotient is the float64 one, which rounds like the
  exact quotient (both operands have 11-bit significands, so a non-tie quotient
  is never within float64's error of a tie): that is the claim the kernel makes
  for its float32 division, and ``test_fp16_quantize_rounds_like_exact_arithmetic``
  checks it against exact rationals. For fp32 programs the reference rounds the
  float64 quotient to float32 first (an fp32 division; double rounding through
  float64 is innocuous for division, 53 >= 2 * 24 + 2).
* ``dequantize``: ``scale * (q - zero_point)`` exactly in float64, then rounded
  once to the declared type: the correctly rounded result.

The end-to-end test quantizes a torch MLP's activations with
``ct.optimize.coreml.linear_quantize_activations`` and bounds the error against
torch from the quantization steps the calibration chose.
"""

from __future__ import annotations

import zlib
from fractions import Fraction
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from pytest_coreml_parity.emulator import Emulator, KernelError, UnspecifiedResultError
from pytest_coreml_parity.emulator.kernels.quantization import dequantize, quantize
from pytest_coreml_parity.emulator.program import load_program
from pytest_coreml_parity.emulator.registry import EXACT_OPS, OpContext

from . import support
from .support import ct

mb = ct.converters.mil.Builder
types = ct.converters.mil.mil.types
cto = ct.optimize.coreml

FLOATS = {"fp32": (np.float32, types.fp32), "fp16": (np.float16, types.fp16)}
INTS = {"int8": (np.int8, -128, 127), "uint8": (np.uint8, 0, 255)}
SHAPE = (2, 3, 4)


# ===================================================================== references


def _along(param: np.ndarray, ndim: int, axis: int | None) -> np.ndarray:
    """A scalar as is; a per-axis vector shaped to broadcast along ``axis``."""
    if axis is None:
        return param
    shape = [1] * ndim
    shape[axis % ndim] = param.size
    return param.reshape(shape)


def np_quantize(
    x: np.ndarray, scale: np.ndarray, zero_point: np.ndarray | None, axis: int | None, to: str
) -> np.ndarray:
    dtype, low, high = INTS[to]
    quotient = x.astype(np.float64) / _along(scale.astype(np.float64), x.ndim, axis)
    if x.dtype == np.float32:
        quotient = quotient.astype(np.float32).astype(np.float64)  # what an fp32 division gives
    q = np.round(quotient)  # numpy rounds half to even
    if zero_point is not None:
        q = q + _along(zero_point.astype(np.float64), x.ndim, axis)
    return np.clip(q, low, high).astype(dtype)


def np_dequantize(
    q: np.ndarray, scale: np.ndarray, zero_point: np.ndarray | None, axis: int | None
) -> np.ndarray:
    values = q.astype(np.float64)
    if zero_point is not None:
        values = values - _along(zero_point.astype(np.float64), q.ndim, axis)
    return (values * _along(scale.astype(np.float64), q.ndim, axis)).astype(scale.dtype)


# ===================================================================== programs


def _convert(prog: Any) -> Any:
    # FLOAT32 keeps the program's own types: fp16 programs stay fp16 (declared in the
    # specs), fp32 programs are not rewritten by the fp16 pass.
    return support.convert_program(prog, ct.target.iOS17)


def _params(zero_point: np.ndarray | None, axis: int | None) -> dict[str, Any]:
    kwargs: dict[str, Any] = {}
    if zero_point is not None:
        kwargs["zero_point"] = zero_point
    if axis is not None:
        kwargs["axis"] = axis
    return kwargs


def _both_ops_model(
    shape: tuple[int, ...],
    fdt: str,
    idt: str,
    scale: np.ndarray,
    zero_point: np.ndarray | None,
    axis: int | None,
) -> Any:
    """``codes = quantize(x)`` and ``values = dequantize(c)`` on independent inputs.

    Core ML I/O has no int8/uint8, so the codes leave as int32 and the integer input
    enters as int32 and is cast to the quantized type inside the program.
    """

    @mb.program(
        input_specs=[
            mb.TensorSpec(shape=shape, dtype=FLOATS[fdt][1]),
            mb.TensorSpec(shape=shape, dtype=types.int32),
        ],
        opset_version=ct.target.iOS17,
    )
    def prog(x: Any, c: Any) -> Any:
        kwargs = _params(zero_point, axis)
        q = mb.quantize(input=x, scale=scale, output_dtype=idt, **kwargs)
        codes = mb.cast(x=q, dtype="int32", name="codes")
        values = mb.dequantize(input=mb.cast(x=c, dtype=idt), scale=scale, name="values", **kwargs)
        return codes, values

    return _convert(prog)


def _quantize_codes(
    x: np.ndarray,
    scale: Any,
    idt: str,
    zero_point: np.ndarray | None = None,
    axis: int | None = None,
) -> np.ndarray:
    """Run one ``quantize`` op on ``x`` (its dtype picks fp16/fp32) and return its codes."""
    ftype = types.fp16 if x.dtype == np.float16 else types.fp32

    @mb.program(input_specs=[mb.TensorSpec(shape=x.shape, dtype=ftype)], opset_version=ct.target.iOS17)
    def prog(x: Any) -> Any:
        q = mb.quantize(input=x, scale=scale, output_dtype=idt, **_params(zero_point, axis))
        return mb.cast(x=q, dtype="int32", name="codes")

    return np.asarray(Emulator(_convert(prog)).run({"x": x})["codes"])


# ===================================================================== (a) builder programs


@pytest.mark.parametrize("with_zero_point", [True, False], ids=["zp", "no_zp"])
@pytest.mark.parametrize("axis", [None, 1, -1], ids=["per_tensor", "axis1", "axis-1"])
@pytest.mark.parametrize("idt", list(INTS))
@pytest.mark.parametrize("fdt", list(FLOATS))
def test_quantize_and_dequantize_match_numpy(
    fdt: str, idt: str, axis: int | None, with_zero_point: bool
) -> None:
    rng = np.random.default_rng(zlib.crc32(f"{fdt}-{idt}-{axis}-{with_zero_point}".encode()))
    fnp, _ = FLOATS[fdt]
    inp, low, high = INTS[idt]
    n = 1 if axis is None else SHAPE[axis]
    scale = rng.uniform(0.05, 2.0, n).astype(fnp)
    zero_point = rng.integers(low, high + 1, n).astype(inp) if with_zero_point else None
    if axis is None:
        scale = scale.reshape(())
        zero_point = None if zero_point is None else zero_point.reshape(())
    # Quotients up to +-170: most codes in range, some saturating at either end.
    x = (_along(scale.astype(np.float64), 3, axis) * rng.uniform(-170, 170, SHAPE)).astype(fnp)
    c = rng.integers(low, high + 1, SHAPE).astype(np.int32)

    emulator = Emulator(_both_ops_model(SHAPE, fdt, idt, scale, zero_point, axis))
    ops = [op.op_type for op in emulator.ops]
    assert "quantize" in ops and "dequantize" in ops, ops
    out = emulator.run({"x": x, "c": c})

    expected_codes = np_quantize(x, scale, zero_point, axis, idt)
    np.testing.assert_array_equal(out["codes"], expected_codes.astype(np.int32))
    expected_values = np_dequantize(c.astype(inp), scale, zero_point, axis)
    assert out["values"].dtype == fnp
    np.testing.assert_array_equal(out["values"], expected_values)


# ===================================================================== (b) ties and saturation


@pytest.mark.parametrize("fdt", list(FLOATS))
def test_quantize_rounds_ties_half_to_even_before_adding_the_zero_point(fdt: str) -> None:
    fnp, _ = FLOATS[fdt]
    scale = fnp(0.25)  # a power of two: x / scale is exact, these are true ties
    ties = np.array([-3.5, -2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 3.5, 126.5, -127.5])
    x = (ties * 0.25).astype(fnp)

    codes = _quantize_codes(x, scale, "int8")
    np.testing.assert_array_equal(codes, [-4, -2, -2, 0, 0, 2, 2, 4, 126, -128])

    # round(x / scale) + 3, as the MIL docstring and coremltools' reference write it.
    # torch.quantize_per_tensor rounds (x / scale + 3) instead, which would give
    # [0, 0, 2, 2, 4, 4, 6, 6, 127, -124]: the two differ exactly on odd-zero-point ties.
    codes = _quantize_codes(x, scale, "int8", zero_point=np.int8(3))
    np.testing.assert_array_equal(codes, [-1, 1, 1, 3, 3, 5, 5, 7, 127, -125])

    codes = _quantize_codes(x, scale, "uint8", zero_point=np.uint8(1))
    np.testing.assert_array_equal(codes, [0, 0, 0, 1, 1, 3, 3, 5, 127, 0])


def test_quantize_saturates_out_of_range_values_and_infinities_fp32() -> None:
    big = np.float32(3e38)
    x = np.array([-np.inf, -big, -1e30, -129.0, -128.6, -0.0, 127.4, 127.6, 1e30, big, np.inf], np.float32)
    np.testing.assert_array_equal(
        _quantize_codes(x, np.float32(1.0), "int8"),
        [-128, -128, -128, -128, -128, 0, 127, 127, 127, 127, 127],
    )
    np.testing.assert_array_equal(
        _quantize_codes(x, np.float32(1.0), "uint8", zero_point=np.uint8(10)),
        [0, 0, 0, 0, 0, 10, 137, 138, 255, 255, 255],
    )
    # A tiny (subnormal) scale: 3e38 / 1e-38 overflows float32 to inf inside the op,
    # which then saturates like any other out-of-range quotient.
    x = np.array([-big, -1e-38, 0.0, 1e-40, 4e-38, big], np.float32)
    np.testing.assert_array_equal(
        _quantize_codes(x, np.float32(1e-38), "int8"), [-128, -1, 0, 0, 4, 127]
    )


def test_quantize_saturates_out_of_range_values_and_infinities_fp16() -> None:
    tiny = np.float16(2.0**-24)  # the smallest fp16 subnormal as the scale
    x = np.array([-np.inf, -65504, -2.0**-22, 0.0, 2.0**-24, 3 * 2.0**-24, 65504, np.inf], np.float16)
    # 65504 / 2**-24 is about 1.1e12: large, but finite in float32. No overflow inside.
    np.testing.assert_array_equal(
        _quantize_codes(x, tiny, "int8"), [-128, -128, -4, 0, 1, 3, 127, 127]
    )
    np.testing.assert_array_equal(
        _quantize_codes(x, np.float16(0.5), "uint8", zero_point=np.uint8(200)),
        [0, 0, 200, 200, 200, 200, 255, 255],
    )


def test_fp16_quantize_rounds_like_exact_arithmetic() -> None:
    """For fp16 operands the kernel's float32 ``x / scale`` rounds like the exact quotient.

    One per-axis quantize op over N near-tie pairs: ``x = fp16((k + 1/2) * scale)``,
    so ``x / scale`` lands just beside (or on) a half-integer. Expected values come
    from exact rationals (``round`` of a ``Fraction`` rounds half to even).
    coremltools' own reference divides fp16 by fp16 *in fp16*, rounding the quotient
    to binary16 before rounding to an integer; on such inputs that differs often,
    which is why the emulator does not copy it.
    """
    rng = np.random.default_rng(7)
    n = 4096
    scale = rng.uniform(1e-3, 1.0, n).astype(np.float16)
    k = rng.integers(-128, 128, n)
    x = ((k + 0.5) * scale.astype(np.float64)).astype(np.float16)
    exact = np.array(
        [
            min(127, max(-128, round(Fraction(float(a)) / Fraction(float(s)))))
            for a, s in zip(x, scale, strict=True)
        ]
    )
    codes = _quantize_codes(x, scale, "int8", axis=0)
    np.testing.assert_array_equal(codes, exact)

    fp16_division = np.clip(np.around(x / scale), -128, 127)  # coremltools' value_inference
    assert (fp16_division != exact).sum() > n // 10  # the choice matters on these inputs


# ===================================================================== (c) end to end


class MLP(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fc1 = nn.Linear(8, 32)
        self.fc2 = nn.Linear(32, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.relu(self.fc1(x)))


def _predict_with_emulator(self: Any, data: dict[str, Any], state: Any = None) -> dict[str, Any]:
    return Emulator(self).run(data)


@pytest.mark.parametrize("precision", list(support.PRECISIONS))
def test_activation_quantized_mlp_end_to_end(
    precision: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """W8A8-style activation quantization of a real torch MLP, run by the emulator.

    ``linear_quantize_activations`` calibrates by calling ``MLModel.predict`` on the
    float model with extra outputs. Core ML cannot predict on Linux, so predict runs
    the emulator instead (as in the conformance harness): the calibration is
    coremltools' own code, fed the float model's real activations.
    """
    model = MLP().eval()
    x = support.randn(64, 8, seed=11)
    float_model = support.convert(model, [x], target="iOS17", precision=precision)
    monkeypatch.setattr(ct.models.MLModel, "predict", _predict_with_emulator)
    config = cto.OptimizationConfig(
        global_config=cto.OpLinearQuantizerConfig(mode="linear_symmetric", dtype="int8")
    )
    # One calibration sample, the very batch we evaluate: coremltools 9.0 keeps only the
    # *last* sample's min/max (_update_tensor_range and record_intermediate_output
    # overwrite before they compare), so this is what makes "no saturation" true.
    mlmodel = cto.linear_quantize_activations(float_model, config, [{"x0": x.numpy()}])

    function = load_program(mlmodel).function
    quantizes = function.find_ops(op_type="quantize")
    dequantizes = function.find_ops(op_type="dequantize")
    assert len(quantizes) == 2 and len(dequantizes) == 2, [op.op_type for op in function.operations]

    emulator = Emulator(mlmodel)
    feed = {"x0": x.numpy()}
    recording = emulator.record(feed)
    # Every quantize/dequantize output equals the numpy reference on the op's actual
    # input, bit for bit.
    for op in quantizes + dequantizes:
        scale = np.asarray(op.scale.val)
        zero_point = None if op.zero_point is None else np.asarray(op.zero_point.val)
        axis = None if op.axis is None else int(op.axis.val)
        got = recording.values[op.outputs[0].name]
        given = recording.values[op.input.name]
        if op.op_type == "quantize":
            want = np_quantize(given, scale, zero_point, axis, op.output_dtype.val)
            assert len(np.unique(got)) > 40, "activations use the int8 range"
        else:
            want = np_dequantize(given, scale, zero_point, axis)
        np.testing.assert_array_equal(got, want, err_msg=op.name)

    # What is quantized: the input, and the hidden activation after relu.
    by_input = {op.input.name: op for op in quantizes}
    assert "x0" in by_input, sorted(by_input)
    (hidden,) = [name for name in by_input if name != "x0"]
    producers = {v.name: op.op_type for op in function.operations for v in op.outputs}
    assert producers[hidden] == "relu"
    s_in = float(by_input["x0"].scale.val)
    s_hidden = float(by_input[hidden].scale.val)
    # The error bounds below assume no code saturated: calibration saw this batch.
    assert np.abs(recording.values["x0"].astype(np.float64)).max() / s_in <= 127.5
    assert recording.values[hidden].astype(np.float64).max() / s_hidden <= 127.5

    # Tolerance from the quantization steps. Rounding to a step s moves a value by at
    # most s/2. The input error e_in = s_in/2 passes through fc1 as |W1| @ e_in
    # (relu is 1-Lipschitz), the hidden quantization adds s_hidden/2, and fc2 maps
    # that through |W2|:  bound = |W2| @ (|W1| @ (s_in/2) + s_hidden/2), per output
    # feature. This is a worst case (every rounding error aligned with its weight's
    # sign). On top comes the float arithmetic of the unquantized model, at the usual
    # tolerances of this suite (support.TOLERANCES).
    w1 = np.abs(model.fc1.weight.detach().numpy().astype(np.float64))
    w2 = np.abs(model.fc2.weight.detach().numpy().astype(np.float64))
    bound = w2 @ (w1 @ np.full(8, s_in / 2) + s_hidden / 2)
    (want,) = support.torch_outputs(model, [x])
    want = want.astype(np.float64)
    (name,) = emulator.output_names
    got = recording.outputs[name].astype(np.float64)
    rtol, atol = support.TOLERANCES[precision]
    scale = max(1.0, float(np.abs(want).max())) if precision == "fp16" else 1.0
    allowed = bound + atol * scale + rtol * np.abs(want)
    err = np.abs(got - want)
    assert (err <= allowed).all(), (
        f"max error {err.max():.3g} exceeds the bound (max {allowed.max():.3g}); "
        f"quantization bound per feature {bound}"
    )
    # The quantization really changed the numbers (the float model's emulator output
    # differs from the quantized one), and its bound is not vacuous (well below the
    # output's spread).
    (float_out,) = Emulator(float_model).run(feed).values()
    assert not np.array_equal(float_out, recording.outputs[name])
    assert bound.max() < 0.25 * np.ptp(want)


# ===================================================================== (d) NaN, validation


@pytest.mark.parametrize("fdt", list(FLOATS))
def test_quantize_of_nan_is_refused(fdt: str) -> None:
    fnp, _ = FLOATS[fdt]
    with pytest.raises(KernelError, match=r"quantize op .* failed: UnspecifiedResultError") as info:
        _quantize_codes(np.array([1.0, np.nan, 2.0], fnp), fnp(0.5), "int8")
    assert isinstance(info.value.__cause__, UnspecifiedResultError)
    assert "NaN" in str(info.value.__cause__)


def _ctx(op_type: str, dtype: Any, shape: tuple[int, ...]) -> OpContext:
    return OpContext(
        op_type=op_type,
        name="q",
        opset="iOS17",
        output_dtypes=(np.dtype(dtype),),
        output_shapes=(shape,),
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"scale": np.float32([1, 2])}, "needs an axis"),
        ({"scale": np.float32([1, 2]), "axis": 1}, r"scale of shape \(2,\) does not match axis 1"),
        ({"scale": np.float32([1, 2, 3]), "axis": 2}, "axis 2 is out of range"),
        ({"scale": np.float32(1), "axis": 0}, "axis must not be given"),
        ({"scale": np.float32([[1, 2]]), "axis": 0}, "scalar or a vector"),
        ({"scale": np.float32([1, 0]), "axis": 0}, "finite and nonzero"),
        ({"scale": np.float32(1), "zero_point": np.int8([1, 2])}, "must be a scalar like scale"),
        (
            {"scale": np.float32([1, 2]), "zero_point": np.int8([1, 2, 3]), "axis": 0},
            r"zero_point of shape \(3,\) does not match axis 0",
        ),
        ({"scale": np.float32(1), "zero_point": np.uint8(1)}, "zero_point has dtype uint8"),
        ({"scale": np.float32(1), "output_dtype": "int16"}, "must be int8 or uint8"),
    ],
)
def test_quantize_rejects_malformed_parameters(kwargs: dict[str, Any], message: str) -> None:
    # coremltools' builder rejects these programs before they reach a file; the kernel
    # checks anyway, so a hand-written or corrupt program fails with a clear message.
    kwargs = {"output_dtype": "int8", **kwargs}
    x = np.zeros((2, 3), np.float32)
    with pytest.raises(ValueError, match=message):
        quantize(_ctx("quantize", np.int8, x.shape), input=x, **kwargs)


def test_dequantize_rejects_malformed_parameters() -> None:
    q = np.zeros((2, 3), np.int8)
    ctx = _ctx("dequantize", np.float32, q.shape)
    with pytest.raises(ValueError, match="zero_point has dtype uint8, input has int8"):
        dequantize(ctx, input=q, scale=np.float32(1), zero_point=np.uint8(1))
    with pytest.raises(ValueError, match="must be int8 or uint8"):
        dequantize(ctx, input=q.astype(np.int32), scale=np.float32(1))
    with pytest.raises(ValueError, match=r"scale of shape \(2,\) does not match axis 1"):
        dequantize(ctx, input=q, scale=np.float32([1, 2]), axis=1)


def test_neither_op_skips_fp16_rounding() -> None:
    # quantize returns integers; dequantize's scale * (q - zp) is generally not an fp16
    # number (an 8-bit integer times an 11-bit significand), so both must be rounded.
    assert "quantize" not in EXACT_OPS and "dequantize" not in EXACT_OPS
