"""The proto loader (emulator/milproto.py) plans every model exactly as coremltools' does.

Real conversions with real coremltools; each model is planned by both loaders and the
plans compared field by field (loader_check.py), then run by both plans on the same
inputs with bit-identical outputs. The corpus covers fp32 and fp16 programs, states,
control flow and lists, compressed weights (constexpr ops, sub-byte blobs),
multi-function packages and image inputs; ``COREML_PARITY_COMPARE_LOADERS=1`` extends
the check to every model of the emulator tests. Also: the tables the loader keeps
agree with coremltools, the weight-file reader agrees with coremltools' C++ reader,
and a saved package runs without importing coremltools.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from coremltools.converters.mil import Builder as mb

from pytest_coreml_parity.emulator import Emulator
from pytest_coreml_parity.emulator.blob import BlobFiles
from pytest_coreml_parity.emulator.compile import compile_block
from pytest_coreml_parity.emulator.execute import execute
from pytest_coreml_parity.emulator.milproto import SPEC_TO_OPSET, TUPLE_INPUTS
from pytest_coreml_parity.emulator.saved import SavedModel

from . import support
from .loader_check import plan_difference, plans
from .test_recurrent_control import DataDependentWhile
from .test_state import kv_model

ct = support.ct
cto = ct.optimize.coreml


class MLP(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.up = torch.nn.Linear(32, 64)
        self.down = torch.nn.Linear(64, 16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.down(torch.nn.functional.gelu(self.up(x))), dim=-1)


class ConvNet(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(1)
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.norm = torch.nn.BatchNorm2d(8)
        self.depthwise = torch.nn.Conv2d(8, 8, 3, groups=8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.depthwise(torch.relu(self.norm(self.conv(x))))
        return torch.cat([y.mean(dim=(2, 3)), y.amax(dim=(2, 3))], dim=1)


def _mlp(precision: str, target: str = "iOS17") -> Any:
    return support.convert(MLP(), (torch.randn(4, 32),), precision=precision, target=target)


def _compressed(recipe: str) -> Any:
    model = _mlp("fp16", "iOS18")
    if recipe == "palettize4":
        config = cto.OptimizationConfig(cto.OpPalettizerConfig(nbits=4, mode="kmeans"))
        return cto.palettize_weights(model, config)
    if recipe == "int8":
        config = cto.OptimizationConfig(cto.OpLinearQuantizerConfig(mode="linear_symmetric"))
        return cto.linear_quantize_weights(model, config)
    if recipe == "int4-blockwise":
        op = cto.OpLinearQuantizerConfig(mode="linear", dtype="int4", granularity="per_block", block_size=16)
        return cto.linear_quantize_weights(model, cto.OptimizationConfig(op))
    if recipe == "prune50":
        config = cto.OptimizationConfig(cto.OpMagnitudePrunerConfig(target_sparsity=0.5))
        return cto.prune_weights(model, config)
    raise AssertionError(recipe)


def _iOS16_constexpr() -> Any:
    """iOS16's constexpr_affine_dequantize / lut_to_dense / sparse_to_dense: attributes only."""
    rng = np.random.default_rng(0)
    quantized = rng.integers(0, 255, (8, 4), dtype=np.uint8)
    indices = rng.integers(0, 4, 32)
    packed = np.packbits(((indices[:, None] >> np.arange(2)) & 1).reshape(-1), bitorder="little")
    mask_bits = rng.integers(0, 2, 32).astype(np.uint8)
    nonzero = rng.normal(size=int(mask_bits.sum())).astype(np.float32)

    @mb.program(input_specs=[mb.TensorSpec(shape=(2, 4))], opset_version=ct.target.iOS16)
    def prog(x):  # type: ignore[no-untyped-def]
        w1 = mb.constexpr_affine_dequantize(
            quantized_data=quantized, zero_point=np.uint8(128), scale=np.float32(0.01), axis=0
        )
        w2 = mb.constexpr_lut_to_dense(
            indices=packed.astype(np.uint8), lut=rng.normal(size=4).astype(np.float32),
            shape=np.array([8, 4], np.uint32),
        )
        w3 = mb.constexpr_sparse_to_dense(
            nonzero_data=nonzero, mask=np.packbits(mask_bits, bitorder="little"),
            shape=np.array([8, 4], np.uint32),
        )
        return mb.linear(x=x, weight=mb.add(x=mb.add(x=w1, y=w2), y=w3))

    return ct.convert(
        prog, convert_to="mlprogram", minimum_deployment_target=ct.target.iOS16,
        compute_precision=ct.precision.FLOAT32,
    )


def _while() -> Any:
    return support.convert(DataDependentWhile(), [torch.randn(3, 4)], script=True, precision="fp16")


def _lists() -> Any:
    @mb.program(input_specs=[mb.TensorSpec(shape=(3,))], opset_version=ct.target.iOS15)
    def prog(x):  # type: ignore[no-untyped-def]
        ls = mb.make_list(init_length=1, dynamic_length=True, elem_shape=[3], dtype="fp32")

        def body(i, acc, ls):  # type: ignore[no-untyped-def]
            acc = mb.mul(x=acc, y=2.0)
            return mb.add(x=i, y=1), acc, mb.list_write(ls=ls, index=i, value=acc)

        _, _, ls = mb.while_loop(
            _cond=lambda i, acc, ls: mb.less(x=i, y=4), _body=body, loop_vars=(np.int32(0), x, ls)
        )
        return mb.list_gather(ls=ls, indices=np.array([0, 1, 2, 3], np.int32)), mb.list_length(ls=ls)

    return ct.convert(prog, convert_to="mlprogram", minimum_deployment_target=ct.target.iOS15)


def _image() -> Any:
    torch.manual_seed(2)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU()).eval()
    traced = torch.jit.trace(model, torch.rand(1, 3, 8, 8))  # type: ignore[no-untyped-call]
    return ct.convert(
        traced,
        inputs=[ct.ImageType(name="image", shape=(1, 3, 8, 8), scale=1 / 255.0, bias=[-0.5, -0.4, -0.3])],
        convert_to="mlprogram",
        minimum_deployment_target=ct.target.iOS16,
    )


def _multifunction(tmp_path: Path) -> Path:
    first, second = _mlp("fp32"), _mlp("fp16")
    first.save(str(tmp_path / "a.mlpackage"))
    second.save(str(tmp_path / "b.mlpackage"))
    desc = ct.utils.MultiFunctionDescriptor()
    desc.add_function(str(tmp_path / "a.mlpackage"), src_function_name="main", target_function_name="full")
    desc.add_function(str(tmp_path / "b.mlpackage"), src_function_name="main", target_function_name="half")
    desc.default_function_name = "full"
    ct.utils.save_multifunction(desc, str(tmp_path / "multi.mlpackage"))
    return tmp_path / "multi.mlpackage"


#: name -> (build the model, the functions to check)
CORPUS: dict[str, Callable[[], Any]] = {
    "mlp-fp32": lambda: _mlp("fp32"),
    "mlp-fp16": lambda: _mlp("fp16"),
    "conv-fp16-iOS15": lambda: support.convert(ConvNet(), (torch.randn(1, 3, 8, 8),), precision="fp16", target="iOS15"),
    "conv-fp32-iOS18": lambda: support.convert(ConvNet(), (torch.randn(1, 3, 8, 8),), precision="fp32", target="iOS18"),
    "kv-cache-states-fp16": lambda: kv_model("fp16"),
    "kv-cache-states-fp32": lambda: kv_model("fp32"),
    "while-loop-fp16": _while,
    "lists-in-a-loop": _lists,
    "palettize4": lambda: _compressed("palettize4"),
    "int8": lambda: _compressed("int8"),
    "int4-blockwise": lambda: _compressed("int4-blockwise"),
    "prune50": lambda: _compressed("prune50"),
    "iOS16-constexpr": _iOS16_constexpr,
    "image-input": _image,
}


def _inputs(plan: Any, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    feed = {}
    for spec in plan.inputs:
        shape = tuple(d if d is not None else 2 for d in spec.shape)
        if spec.dtype.kind == "f":
            feed[spec.name] = rng.normal(size=shape).astype(spec.dtype)
        else:
            feed[spec.name] = rng.integers(0, 4, size=shape).astype(spec.dtype)
    return feed


def _assert_same_runs(by_loader: dict[str, Any]) -> None:
    """Both plans, run on the same inputs (and a fresh state each), give identical outputs."""
    from pytest_coreml_parity.emulator.execute import EmulatorState

    outputs = {}
    for loader, plan in by_loader.items():
        state = EmulatorState(plan.states) if plan.states else None
        runs = []
        for seed in (0, 1):
            got, _env = execute(plan, _inputs(plan, seed), compiled=compile_block(plan.block), state=state)
            runs.append(got)
        outputs[loader] = runs
    for got, want in zip(outputs["proto"], outputs["coremltools"], strict=True):
        assert got.keys() == want.keys()
        for name in got:
            assert got[name].dtype == want[name].dtype
            np.testing.assert_array_equal(got[name], want[name])


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_both_loaders_plan_and_run_the_model_identically(name: str) -> None:
    model = CORPUS[name]()
    for profile in ("typed", "float32"):
        by_loader = plans(model, fp16_execution=profile)
        difference = plan_difference(by_loader["proto"], by_loader["coremltools"])
        assert not difference, "\n".join(difference[:20])
    _assert_same_runs(by_loader)


def test_both_loaders_agree_on_every_function_of_a_multifunction_package(tmp_path: Path) -> None:
    path = _multifunction(tmp_path)
    for function in ("full", "half", "main"):
        by_loader = plans(path, function)
        assert not plan_difference(by_loader["proto"], by_loader["coremltools"])
        assert by_loader["proto"].function_name == ("full" if function == "main" else function)
    _assert_same_runs(plans(SavedModel(path, function_name="half")))


def test_tuple_inputs_are_coremltools_tuple_inputs() -> None:
    from coremltools.converters.mil.mil import TupleInputType
    from coremltools.converters.mil.mil.ops.registry import SSAOpRegistry

    found = set()
    for op_type, per_opset in SSAOpRegistry.core_ops.items():
        for op_class in per_opset.values():
            for param, kind in op_class.input_spec.input_types.items():
                if isinstance(kind, TupleInputType):
                    found.add((op_type, param))
    assert found == TUPLE_INPUTS


def test_specification_versions_name_coremltools_targets() -> None:
    for version, name in SPEC_TO_OPSET.items():
        assert ct.target(version).name == name
    assert max(SPEC_TO_OPSET) == max(t.value for t in ct.target)


def test_weight_files_read_as_coremltools_reads_them(tmp_path: Path) -> None:
    from coremltools.libmilstoragepython import _BlobStorageReader, _BlobStorageWriter

    rng = np.random.default_rng(0)
    values: dict[str, np.ndarray] = {
        "fp16": rng.normal(size=37).astype(np.float16),
        "fp32": rng.normal(size=5).astype(np.float32),
        "int8": rng.integers(-128, 128, 19).astype(np.int8),
        "uint8": rng.integers(0, 256, 19).astype(np.uint8),
        "int16": rng.integers(-3000, 3000, 7).astype(np.int16),
        "uint16": rng.integers(0, 60000, 7).astype(np.uint16),
        "int32": rng.integers(-(2**31), 2**31 - 1, 3).astype(np.int32),
        "uint32": rng.integers(0, 2**32 - 1, 3).astype(np.uint32),
        "int4": rng.integers(-8, 8, 13).astype(np.int8),
        "uint1": rng.integers(0, 2, 13).astype(np.uint8),
        "uint2": rng.integers(0, 4, 13).astype(np.uint8),
        "uint3": rng.integers(0, 8, 13).astype(np.uint8),
        "uint4": rng.integers(0, 16, 13).astype(np.uint8),
        "uint6": rng.integers(0, 64, 13).astype(np.uint8),
    }
    method = {"fp16": "fp16", "fp32": "float"}
    writer = _BlobStorageWriter(str(tmp_path / "weight.bin"))
    offsets = {}
    for mil_type, array in values.items():
        data = array.view(np.uint16) if mil_type == "fp16" else array
        offsets[mil_type] = getattr(writer, f"write_{method.get(mil_type, mil_type)}_data")(data)
    del writer
    reader = _BlobStorageReader(str(tmp_path / "weight.bin"))
    ours = BlobFiles(tmp_path, "test")
    for mil_type, offset in offsets.items():
        theirs = getattr(reader, f"read_{method.get(mil_type, mil_type)}_data")(offset)
        got = ours.read("@model_path/weights/weight.bin", offset, mil_type)
        if mil_type == "fp16":
            theirs = np.frombuffer(theirs.tobytes(), np.float16)
        np.testing.assert_array_equal(got, theirs)
        np.testing.assert_array_equal(got, values[mil_type])
        assert got.dtype == theirs.dtype


def test_a_saved_package_runs_without_importing_coremltools(tmp_path: Path) -> None:
    model = _compressed("palettize4")
    model.save(str(tmp_path / "model.mlpackage"))
    x = np.random.default_rng(0).normal(size=(4, 32)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    code = (
        "import json, sys, numpy as np\n"
        "from pytest_coreml_parity import emulate\n"
        f"out = emulate({str(tmp_path / 'model.mlpackage')!r}, {{'x0': np.load({str(tmp_path / 'x.npy')!r})}})\n"
        "np.save(sys.argv[1], next(iter(out.values())))\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] == 'coremltools')))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "out.npy")], capture_output=True, text=True, check=True
    )
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
    want = next(iter(Emulator(model).run({"x0": x}).values()))
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), want)


def test_a_saved_model_forwards_to_coremltools_mlmodel_built_on_first_use(tmp_path: Path) -> None:
    model = _mlp("fp32")
    model.user_defined_metadata["origin"] = "test"
    model.save(str(tmp_path / "model.mlpackage"))
    saved = SavedModel(tmp_path / "model.mlpackage")
    assert saved.get_spec().WhichOneof("Type") == "mlProgram"
    assert saved.weights_dir is not None and Path(saved.weights_dir, "weight.bin").is_file()
    assert saved.__dict__["_mlmodel"] is None  # the spec alone built nothing
    assert saved.user_defined_metadata["origin"] == "test"  # forwarded: builds the MLModel
    assert isinstance(saved.to_mlmodel(), ct.models.MLModel)
    assert saved.to_mlmodel() is saved.to_mlmodel()
    assert getattr(saved, "_mil_program", None) is None  # private names are not forwarded
