"""w8a8 calibration on Linux (through the emulator, scoped), and the attribution's numbers."""

from __future__ import annotations

import sys
import threading
from typing import Any

import coremltools as ct
import coremltools.optimize.coreml as cto
import numpy as np
import pytest
import torch

from pytest_coreml_parity import messages
from pytest_coreml_parity.compress import emulated_predictions
from pytest_coreml_parity.convert import ConversionOptions, convert_model
from pytest_coreml_parity.diagnose.compression import attribute_compression, torch_names
from pytest_coreml_parity.emulator import Emulator, emulate
from pytest_coreml_parity.emulator.program import load_program
from pytest_coreml_parity.errors import ConversionError

from .models import EXAMPLE_SHAPE, load

MODELS = load()


def _example(seed: int = 1) -> torch.Tensor:
    return torch.randn(EXAMPLE_SHAPE, generator=torch.Generator().manual_seed(seed))


def test_w8a8_calibrates_on_the_example_inputs_through_the_emulator() -> None:
    model = MODELS["Healthy"]().eval()  # type: ignore[operator]
    example = _example()
    original = ct.models.MLModel.predict
    mlmodel = convert_model(model, (example,), ConversionOptions(precision="w8a8"))
    function = load_program(mlmodel).function
    ops = [op.op_type for op in function.operations]
    assert "quantize" in ops and "dequantize" in ops, ops  # activations
    assert "constexpr_blockwise_shift_scale" in ops or "constexpr_affine_dequantize" in ops, ops  # weights
    # The input's scale is calibrated on the example: max |x| / 127 (linear_symmetric int8).
    first = next(op for op in function.operations if op.op_type == "quantize" and op.input.name == "x")
    want = float(np.abs(example.numpy()).max()) / 127.0
    assert float(first.scale.val) == pytest.approx(want, rel=1e-3)
    assert ct.models.MLModel.predict is original  # nothing left patched


def test_emulated_predictions_is_scoped_to_the_block_and_the_thread() -> None:
    original = ct.models.MLModel.predict
    model = torch.nn.Sequential(torch.nn.Linear(4, 2)).eval()
    mlmodel = convert_model(model, (torch.ones(1, 4),), ConversionOptions(precision="fp16"))
    name = Emulator(mlmodel).inputs[0].name
    feed = {name: np.ones((1, 4), np.float32)}
    elsewhere: list[Any] = []

    def other_thread() -> None:
        try:
            mlmodel.predict(feed)
        except Exception as exc:  # no Core ML runtime on Linux: the original predict refuses
            elsewhere.append(type(exc))
        else:
            elsewhere.append("ran")

    with emulated_predictions():
        got = mlmodel.predict(feed)
        thread = threading.Thread(target=other_thread)
        thread.start()
        thread.join()
    for key, value in emulate(mlmodel, feed).items():
        np.testing.assert_array_equal(got[key], value)
    assert ct.models.MLModel.predict is original
    if sys.platform != "darwin":
        assert elsewhere and elsewhere[0] != "ran"  # the other thread kept the real predict
    with pytest.raises(RuntimeError), emulated_predictions():
        raise RuntimeError("boom")
    assert ct.models.MLModel.predict is original  # restored after an error too


class _Bound:
    """What diagnosis reads from a coreml_model (the ModelUnderTest protocol)."""

    def __init__(self, torch_model: Any, options: ConversionOptions) -> None:
        self.torch_model = torch_model
        self.example_inputs = (_example(),)
        self.options = options
        self.mlmodel = convert_model(torch_model, self.example_inputs, options)
        self.precision = options.precision
        self.rtol = self.atol = None
        self.search_fix = False


def test_pr_2777_is_attributed_to_the_declined_weight() -> None:
    config = cto.OptimizationConfig(
        global_config=cto.OpPalettizerConfig(
            nbits=4, mode="kmeans", granularity="per_grouped_channel", group_size=16,
            enable_per_channel_scale=True,
        )
    )
    bound = _Bound(MODELS["Odd"]().eval(), ConversionOptions(precision="custom", target="iOS18", optimization=config))  # type: ignore[operator]
    found = attribute_compression(bound, (_example(2).numpy(),))
    worst = found.weights[0]
    assert (worst.name, worst.torch_name, worst.source) == ("fc1_weight_to_fp16", "fc1.weight", "const")
    assert worst.declined and worst.rel_error > 1.0  # divided by its per-channel max: |w| <= 1
    fc2 = next(w for w in found.weights if w.torch_name == "fc2.weight")
    assert fc2.compressed and not fc2.declined
    assert found.from_compression and found.compression.snr < 0 < 40 < found.fp16.snr
    assert "PR #2777" in found.detail and "fc1.weight" in found.detail


def test_healthy_int8_weights_stay_close_to_torch() -> None:
    bound = _Bound(MODELS["Healthy"]().eval(), ConversionOptions(precision="int8"))  # type: ignore[operator]
    found = attribute_compression(bound, (_example(2).numpy(),))
    by_torch = {w.torch_name: w for w in found.weights}
    assert by_torch["fc1.weight"].compressed and by_torch["fc2.weight"].compressed
    assert all(w.rel_error < 0.02 and not w.declined for w in found.weights), found.weights
    assert found.compression.snr > 30


def test_torch_names_pick_the_longest_exact_prefix() -> None:
    params = ["layer.1.weight", "layer.10.weight", "fc.weight"]
    assert torch_names("layer_10_weight_to_fp16_palettized", params) == "layer.10.weight"
    assert torch_names("layer_1_weight_to_fp16", params) == "layer.1.weight"
    assert torch_names("fc_bias_to_fp16", params) is None


@pytest.mark.parametrize(
    ("precision", "op_type"),
    [("int8", "constexpr_affine_dequantize"), ("palettize4", "constexpr_lut_to_dense"), ("prune50", "constexpr_sparse_to_dense")],
)
def test_each_weight_precision_really_compresses_both_weights(precision: str, op_type: str) -> None:
    model = MODELS["Healthy"]().eval()  # type: ignore[operator]
    mlmodel = convert_model(model, (_example(),), ConversionOptions(precision=precision))
    made = [op.name for op in Emulator(mlmodel).ops if op.op_type == op_type]
    assert len(made) == 2, made  # fc1 and fc2 (4096 elements each, past weight_threshold)


def test_a_config_mixing_kinds_is_a_conversion_error() -> None:
    mixed = cto.OptimizationConfig(
        global_config=cto.OpPalettizerConfig(nbits=4, mode="kmeans"),
        op_type_configs={"linear": cto.OpLinearQuantizerConfig()},
    )
    model = MODELS["Healthy"]().eval()  # type: ignore[operator]
    with pytest.raises(ConversionError) as error:
        convert_model(model, (_example(),), ConversionOptions(precision="custom", optimization=mixed))
    kinds = "['linear_quantize_weights', 'palettize_weights']"
    assert messages.BAD_OPTIMIZATION_KINDS.format(kinds=kinds) in error.value.summary
