"""The fix search verifies by the rule assert_parity judges by (pytest_coreml_parity.verdict)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pytest_coreml_parity.compare import compare_arrays
from pytest_coreml_parity.convert import ConversionOptions, convert_model
from pytest_coreml_parity.diagnose.fix import passes
from pytest_coreml_parity.verdict import PRESETS, judge, mismatch_mask, outputs_match


class Double(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + x


# 1024 elements: one at the edge of fp32's element rule (1e-3 rms) leaves SNR ~90 dB, above
# the fp32 preset's 80 dB floor (with 64 it read 78 dB), so only the element rule decides.
X = np.linspace(0.5, 4.0, 1024, dtype=np.float32).reshape(1, 1024)
OUT = (X + X).astype(np.float64)  # exact in float32
EDGE = 5  # the one element put at the edge of the tolerance (one element: SNR stays high)


@pytest.fixture(scope="module")
def doubled() -> object:
    return convert_model(Double().eval(), (torch.from_numpy(X),), ConversionOptions(precision="fp32"))


def _reference(k: float, precision: str) -> np.ndarray:
    """A torch reference ``e`` equal to ``out`` but at EDGE, where ``out - e == k * (atol +
    scale_atol * rms(e) + rtol * |e|)``: k < 1 inside the preset's element rule, k > 1 outside."""
    gates = PRESETS[precision]
    want = OUT.copy()
    for _ in range(20):  # rms(e) depends on e: a fixed point, reached in a few steps
        allowed = gates.atol + gates.scale_atol * float(np.sqrt(np.mean(want**2)))
        want[0, EDGE] = (OUT[0, EDGE] - k * allowed) / (1.0 + k * gates.rtol)
    return want


def _emulated(mlmodel: object, x: np.ndarray) -> np.ndarray:
    from pytest_coreml_parity.emulator import Emulator

    emulator = Emulator(mlmodel)
    out = emulator.run({emulator.inputs[0].name: x})
    return np.asarray(out[emulator.output_names[0]], dtype=np.float64)


@pytest.mark.parametrize("precision", ["fp16", "fp32"])
@pytest.mark.parametrize(("k", "expected_to_pass"), [(0.99, True), (1.01, False)], ids=["inside", "outside"])
def test_slightly_beyond_the_preset_is_judged_alike(
    doubled: object, precision: str, k: float, expected_to_pass: bool
) -> None:
    gates = PRESETS[precision]
    want = _reference(k, precision)
    emulated = _emulated(doubled, X)
    by_assert_parity = judge(emulated, want, gates).passed
    by_fix_search = passes(doubled, [("inputs", (X,))], [[want]], gates)
    assert by_assert_parity is by_fix_search is expected_to_pass


@pytest.mark.parametrize(("reference_inf", "expected_to_pass"), [(False, False), (True, True)])
def test_new_inf_fails_both_and_matching_inf_passes_both(
    doubled: object, reference_inf: bool, expected_to_pass: bool
) -> None:
    x = X.copy()
    x[0, 2] = 3e38  # x + x overflows float32: inf in the emulated output
    emulated = _emulated(doubled, x)
    assert np.isinf(emulated[0, 2])
    want = (x.astype(np.float64) * 2).copy()
    if reference_inf:
        want[0, 2] = np.inf
    gates = PRESETS["fp32"]
    rtol, atol = gates.tolerance
    by_assert_parity = compare_arrays(emulated, want, rtol, atol).n_mismatched == 0
    by_fix_search = passes(doubled, [("inputs", (x,))], [[want]], gates)
    assert by_assert_parity is by_fix_search is outputs_match(emulated, want, rtol, atol) is expected_to_pass


def test_compare_uses_the_verdict_mask() -> None:
    got = np.array([1.0, np.nan, np.inf, -np.inf, 2.0])
    want = np.array([1.0, np.nan, np.inf, np.inf, 3.0])
    comp = compare_arrays(got, want, 1e-2, 1e-2)
    assert comp.mismatch.tolist() == mismatch_mask(got, want, 1e-2, 1e-2).tolist()
    assert comp.mismatch.tolist() == [False, False, False, True, True]
