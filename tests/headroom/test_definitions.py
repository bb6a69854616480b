"""The headroom numbers themselves, on real conversions run by the emulator."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pytest_coreml_parity.cache import ConversionCache
from pytest_coreml_parity.emulator.dtypes import finite_peak, fp16_peak
from pytest_coreml_parity.headroom import (
    FP16_MAX,
    FP16_TINY,
    HeadroomLog,
    emulator_for,
    fp16_peak_ratio,
)
from pytest_coreml_parity.model import CoreMLModel, ModelSettings, Runtime
from pytest_coreml_parity.settings import Settings


class Square(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * x * 1e-6


def _model(precision: str = "fp16") -> CoreMLModel:
    model = CoreMLModel(
        ModelSettings(Settings(input_dtypes="fp32"), precision=precision),
        Runtime(ConversionCache(None), "emulator"),
    )
    model.bind(Square().eval(), (torch.ones(2, 4),))
    return model


def _by_type(log: HeadroomLog, op_type: str) -> list:
    return [op for op in log.ops.values() if op.op_type == op_type]


def test_peak_is_the_largest_value_over_every_call() -> None:
    model = _model()
    model.headroom = log = HeadroomLog()
    model(np.full((2, 4), 100.0, np.float32))
    model(np.full((2, 4), 200.0, np.float32))  # x * x = 40000
    model(np.full((2, 4), 10.0, np.float32))
    assert log.calls == 3
    square = max(_by_type(log, "mul"), key=lambda op: op.peak)
    assert square.peak == 40000.0 and square.dtype == "float16"
    assert math.isclose(square.margin, FP16_MAX / 40000.0)
    assert square.overflowed == 0


def test_an_op_past_65504_overflowed_with_margin_zero() -> None:
    model = _model()
    model.headroom = log = HeadroomLog()
    x = np.full((2, 4), 10.0, np.float32)
    x[0, 0] = 300.0  # 90000: inf in fp16, from finite inputs
    model(x)
    square = next(op for op in _by_type(log, "mul") if op.overflowed)
    assert square.overflowed == 1 and square.margin == 0.0
    assert square.peak == 100.0  # the largest finite value stored
    later = [op for op in log.ops.values() if op is not square and op.dtype == "float16"]
    assert all(op.overflowed == 0 for op in later)  # inf read from upstream is not theirs


def test_underflow_counts_nonzero_values_stored_as_subnormals() -> None:
    model = _model()
    model.headroom = log = HeadroomLog()
    x = np.array([[1.0, 2.0, 4.0, 0.0], [100.0, 200.0, 0.5, 3.0]], np.float32)
    model(x)
    out = max(_by_type(log, "mul"), key=lambda op: op.underflow_fraction)
    # x*x*1e-6: 1e-6, 4e-6, 1.6e-5, 0, 1e-2, 4e-2, 2.5e-7, 9e-6: 5 of 7 nonzero below 2**-14
    expected = [v for v in (x * x * 1e-6).ravel() if v != 0]
    assert out.nonzero == len(expected) == 7
    assert out.underflow == sum(v < FP16_TINY for v in expected) == 5
    assert math.isclose(out.underflow_fraction, 5 / 7)


def test_no_log_means_no_recording() -> None:
    model = _model()
    model(np.ones((2, 4), np.float32))
    assert model.headroom is None and model.last_peak is None


def test_fp32_ops_are_listed_as_float32() -> None:
    model = _model("fp32")
    model.headroom = log = HeadroomLog()
    model(np.full((2, 4), 300.0, np.float32))
    square = max(_by_type(log, "mul"), key=lambda op: op.peak)
    assert square.dtype == "float32" and square.peak == 90000.0 and square.overflowed == 0


@pytest.mark.parametrize(
    "fill", [0.0, -0.0, 3.0, -250.0, 255.0, 300.0, 65504.0, 65519.0, 65520.0, np.inf, np.nan]
)
def test_fp16_peak_is_the_largest_finite_fp16_value(fill: float) -> None:
    """The fused scan gives each array's ``finite_peak`` in fp16, whatever the mix."""
    rng = np.random.default_rng(0)
    arrays = [
        rng.standard_normal((8, 2)).astype(np.float32),
        np.array([fill, 1.5, -2.0], np.float32),
        np.array([fill], np.float64),
        rng.standard_normal(5000).astype(np.float32) * 10,  # scanned on its own
        np.arange(6, dtype=np.int32),
        np.zeros((0, 3), np.float32),
    ]
    with np.errstate(over="ignore"):  # past 65504 rounds to inf, which is the point
        want = max(finite_peak(a.astype(np.float16)) for a in arrays if a.size)
        assert fp16_peak(arrays) == want
        assert fp16_peak(arrays[1:3]) == max(finite_peak(a.astype(np.float16)) for a in arrays[1:3])
    assert fp16_peak([]) is None and fp16_peak([np.zeros(0, np.float16)]) is None


@pytest.mark.parametrize("precision", ["fp16", "fp32"])
def test_run_fp16_peak_is_the_recordings_peak(precision: str) -> None:
    """Guided fuzzing's peak, read from the held values, is the recording's, outputs and all."""
    emulator = emulator_for(_model(precision).mlmodel)
    (name,) = (i.name for i in emulator.inputs)
    for value in (0.0, 3.0, 200.0, 300.0, np.nan):
        x = np.full((2, 4), 10.0, np.float32)
        x[0, 0] = value
        recording = emulator.record({name: x})
        outputs, peak = emulator.run_fp16_peak({name: x})
        ratio = fp16_peak_ratio(recording)
        assert (peak is None) == (ratio is None) == (precision == "fp32")
        assert peak is None or peak / FP16_MAX == ratio
        assert outputs.keys() == recording.outputs.keys()
        for key, out in outputs.items():
            assert out.dtype == recording.outputs[key].dtype
            np.testing.assert_array_equal(out, recording.outputs[key])
