"""The emulator's structure: the kernel registry and catalog, the block runner that
control-flow kernels receive, the one error rule, and the public API diagnosis reads."""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

import numpy as np
import pytest
import torch

from pytest_coreml_parity.emulator import (
    DuplicateKernelError,
    Emulator,
    EmulatorError,
    KernelError,
    OpInfo,
    UnspecifiedResultError,
    UnsupportedFeatureError,
    UnsupportedOpError,
    supported_ops,
)
from pytest_coreml_parity.emulator import kernels as kernel_package
from pytest_coreml_parity.emulator.checks import kernel_failure
from pytest_coreml_parity.emulator.registry import REGISTERED, OpContext, kernel

from . import support

ct = support.ct


def _ctx(**overrides: Any) -> OpContext:
    fields: dict[str, Any] = {
        "op_type": "some_op",
        "name": "op_1",
        "opset": "iOS17",
        "output_dtypes": (np.dtype(np.float32),),
        "output_shapes": ((2,),),
    }
    fields.update(overrides)
    return OpContext(**fields)


def test_every_kernel_module_is_imported_by_the_kernels_package() -> None:
    listed = set(kernel_package.__all__)
    on_disk = {m.name for m in pkgutil.iter_modules(kernel_package.__path__) if not m.name.startswith("_")}
    assert listed == on_disk
    for name in on_disk:
        importlib.import_module(f"{kernel_package.__name__}.{name}")
    assert supported_ops() == frozenset(REGISTERED) | {"const"}


def test_registering_a_second_kernel_for_an_op_type_is_an_emulator_error() -> None:
    assert "add" in REGISTERED
    before = REGISTERED["add"]
    with pytest.raises(DuplicateKernelError, match="'add'") as info:
        kernel("add")(lambda ctx, x, y: x)
    assert isinstance(info.value, EmulatorError)
    assert info.value.op_type == "add"
    assert REGISTERED["add"] is before


def test_control_flow_kernels_run_blocks_through_the_bound_runner() -> None:
    cond = REGISTERED["cond"]
    assert cond.control_flow
    seen: list[tuple[Any, tuple[Any, ...]]] = []
    blocks = ("true block", "false block")

    def runner(block: Any, values: tuple[Any, ...]) -> list[Any]:
        seen.append((block, values))
        return [np.float32(1.0 if block == "true block" else -1.0)]

    ctx = _ctx(op_type="cond", blocks=blocks)
    assert cond.fn(ctx.with_block_runner(runner), pred=np.array(False)) == -1.0
    assert seen == [("false block", ())]
    assert ctx.block_runner is None  # binding made a new context
    with pytest.raises(KernelError, match="no block runner"):
        cond.fn(ctx, pred=np.array(True))


def test_one_rule_turns_kernel_exceptions_into_emulator_errors() -> None:
    ctx = _ctx()
    plain = kernel_failure(ctx, ValueError("bad"))
    assert isinstance(plain, KernelError)
    assert str(plain) == "some_op op 'op_1' (opset iOS17) failed: ValueError: bad"
    loading = kernel_failure(ctx, ValueError("bad"), when=" while loading")
    assert "failed while loading: ValueError" in str(loading)
    unspecified = kernel_failure(ctx, UnspecifiedResultError("no result"))
    assert isinstance(unspecified, KernelError) and "UnspecifiedResultError" in str(unspecified)
    feature = kernel_failure(ctx, NotImplementedError("mode 'X'"))
    assert isinstance(feature, UnsupportedFeatureError)
    assert (feature.feature, feature.where) == ("mode 'X'", "some_op op 'op_1', opset iOS17")
    passed = KernelError("from a nested block")
    assert kernel_failure(ctx, passed) is passed


def test_unsupported_feature_and_op_errors_are_siblings() -> None:
    feature = UnsupportedFeatureError("sampling_mode 'X'", "crop_resize op 'c', opset iOS17")
    assert isinstance(feature, EmulatorError)
    assert not isinstance(feature, UnsupportedOpError)
    assert not hasattr(feature, "op_type")
    assert str(feature) == (
        "the emulator does not support sampling_mode 'X' (crop_resize op 'c', opset iOS17)"
    )


class Scaled(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("scale", torch.tensor([70000.0, 2.0, 3.0, 4.0]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x * self.scale) + 1.0


def test_recording_api_gives_ops_inputs_and_constants_without_the_plan() -> None:
    x = support.randn(2, 4, seed=3)
    mlmodel = support.convert(Scaled(), (x,), precision="fp32")
    emulator = Emulator(mlmodel)
    assert emulator.opset == "iOS16"
    recording = emulator.record({"x0": x.numpy()})
    assert recording.ops == emulator.ops
    mul = next(op for op in emulator.ops if op.op_type == "mul")
    assert isinstance(mul, OpInfo)
    assert emulator.op(mul.name) is mul and recording.op(mul.name) is mul
    with pytest.raises(KeyError, match="no op named 'nope'"):
        recording.op("nope")
    constants = recording.op_constants(mul)
    (const_key,) = constants
    np.testing.assert_array_equal(constants[const_key], [70000.0, 2.0, 3.0, 4.0])
    assert dict(mul.constants) == constants
    inputs = recording.op_inputs(mul)
    assert inputs[const_key] == [None]  # a constant is not a recorded value
    (other_key,) = set(inputs) - {const_key}
    np.testing.assert_array_equal(inputs[other_key][0], x.numpy())
    (product,) = recording.op_outputs(mul)
    np.testing.assert_allclose(product, x.numpy() * [70000.0, 2.0, 3.0, 4.0], rtol=1e-6)
