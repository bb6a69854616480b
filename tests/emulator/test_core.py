"""The emulator's loading, planning and running machinery, on real converted models."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from pytest_coreml_parity.emulator import (
    Emulator,
    InputError,
    KernelError,
    ModelLoadError,
    UnsupportedOpError,
    emulate,
)

from . import support

ct = support.ct


class ComplexDiv(torch.nn.Module):
    def forward(self, a: torch.Tensor) -> torch.Tensor:
        ra, ia, rb, ib = a.unbind(-1)
        den = rb * rb + ib * ib
        return torch.stack([(ra * rb + ia * ib) / den, (ia * rb - ra * ib) / den], -1)


class TwoLinear(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.a = torch.nn.Linear(16, 8)
        self.b = torch.nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(torch.relu(self.a(x)))


@pytest.fixture(scope="module")
def fp16_model() -> Any:
    return support.convert(ComplexDiv(), (torch.randn(8, 4),), target="iOS16", precision="fp16")


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    mlmodel = support.convert(TwoLinear(), (torch.randn(2, 16),), precision="fp16")
    path = tmp_path_factory.mktemp("pkg") / "two_linear.mlpackage"
    mlmodel.save(str(path))
    return path


def _random_uniform_model() -> Any:
    from coremltools.converters.mil import Builder as mb

    @mb.program(input_specs=[mb.TensorSpec(shape=(2, 3))], opset_version=ct.target.iOS16)
    def prog(x: Any) -> Any:
        noise = mb.random_uniform(shape=np.array([2, 3], dtype=np.int32), name="noise")
        return mb.add(x=x, y=noise, name="out")

    return support.convert_program(prog, ct.target.iOS16)


def test_unsupported_op_fails_loudly_before_running() -> None:
    mlmodel = _random_uniform_model()
    with pytest.raises(UnsupportedOpError) as info:
        Emulator(mlmodel)
    err = info.value
    assert (err.op_type, err.op_name, err.opset) == ("random_uniform", "noise", "iOS16")
    assert "random_uniform" in str(err) and "'noise'" in str(err) and "iOS16" in str(err)
    with pytest.raises(UnsupportedOpError):
        emulate(mlmodel, {"x": np.zeros((2, 3), np.float32)})


def test_fp16_io_model_returns_float16_and_rounds_inputs_on_the_way_in(fp16_model: Any) -> None:
    a = np.array([[70000.0, 1.0, 2.0, 0.0]] * 8, dtype=np.float32)
    (out,) = emulate(fp16_model, {"x0": a}).values()
    assert out.dtype == np.float16
    # ra = 70000 is inf once stored as fp16: ra*rb = inf, inf/4 = inf.
    assert np.isinf(out[:, 0]).all()


def test_recording_holds_every_op_output_in_declared_dtype(fp16_model: Any) -> None:
    a = np.random.default_rng(0).normal(size=(8, 4)).astype(np.float32)
    values = emulate(fp16_model, {"x0": a}, record=True)
    emulator = Emulator(fp16_model)
    for op in emulator.ops:
        for name in op.outputs:
            assert name in values, f"{op.op_type} {op.name} output {name} not recorded"
            assert values[name].dtype == np.float16
    outputs = emulator.run({"x0": a})
    for name, value in outputs.items():
        np.testing.assert_array_equal(values[name], value)


def test_saved_and_reloaded_package_matches_in_memory_model(package: Path) -> None:
    x = np.random.default_rng(1).normal(size=(2, 16)).astype(np.float32)
    in_memory = support.convert(TwoLinear(), (torch.randn(2, 16),), precision="fp16")
    expected = emulate(in_memory, {"x0": x})
    from_path = emulate(package, {"x0": x})
    from_model = emulate(ct.models.MLModel(str(package), skip_model_load=True), {"x0": x})
    assert expected.keys() == from_path.keys() == from_model.keys()
    for name in expected:
        assert expected[name].dtype == np.float16
        np.testing.assert_array_equal(expected[name], from_path[name])
        np.testing.assert_array_equal(expected[name], from_model[name])


def _truncate(path: Path, keep: int) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:keep])


CORRUPTIONS = {
    "weights-truncated-mid-blob": lambda p: _truncate(next(p.rglob("weight.bin")), 200),
    "weights-truncated-header": lambda p: _truncate(next(p.rglob("weight.bin")), 10),
    "weights-bad-sentinel": lambda p: (lambda w: w.write_bytes(w.read_bytes()[:64] + b"\0" * 4 + w.read_bytes()[68:]))(next(p.rglob("weight.bin"))),
    "spec-truncated": lambda p: _truncate(next(p.rglob("model.mlmodel")), 40),
    "spec-garbage": lambda p: next(p.rglob("model.mlmodel")).write_bytes(b"\xff" * 300),
    "manifest-not-json": lambda p: (p / "Manifest.json").write_text("{nope"),
    "manifest-missing": lambda p: (p / "Manifest.json").unlink(),
    "weights-dir-missing": lambda p: shutil.rmtree(next(p.rglob("weights"))),
}


@pytest.mark.parametrize("corruption", sorted(CORRUPTIONS))
def test_malformed_package_raises_model_load_error(package: Path, tmp_path: Path, corruption: str) -> None:
    bad = tmp_path / "bad.mlpackage"
    shutil.copytree(package, bad)
    CORRUPTIONS[corruption](bad)
    with pytest.raises(ModelLoadError, match=r"bad\.mlpackage"):
        emulate(bad, {"x0": np.zeros((2, 16), np.float32)})


def test_missing_path_and_wrong_types_raise_model_load_error(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="no such file"):
        Emulator(tmp_path / "absent.mlpackage")
    with pytest.raises(ModelLoadError, match="expected a coremltools MLModel"):
        Emulator(42)


def test_neural_network_model_is_rejected_with_a_clear_error() -> None:
    model = TwoLinear().eval()
    traced = torch.jit.trace(model, (torch.randn(2, 16),))
    nn_model = ct.convert(
        traced,
        inputs=[ct.TensorType(name="x0", shape=(2, 16))],
        convert_to="neuralnetwork",
    )
    with pytest.raises(ModelLoadError, match="not an ML Program"):
        Emulator(nn_model)


def test_unknown_function_name(fp16_model: Any) -> None:
    with pytest.raises(ModelLoadError, match="no function 'other'"):
        Emulator(fp16_model, function_name="other")


@pytest.mark.parametrize(
    ("feed", "message"),
    [
        ({}, r"missing \['x0'\]"),
        ({"x0": np.zeros((8, 4)), "y": np.zeros(1)}, r"unexpected \['y'\]"),
        ({"x0": np.zeros((8, 5))}, r"shape \(8, 5\); the model declares \(8, 4\)"),
        ({"x0": np.array([["a"] * 4] * 8)}, "expected numbers"),
    ],
)
def test_bad_inputs_raise_input_error(fp16_model: Any, feed: dict[str, Any], message: str) -> None:
    with pytest.raises(InputError, match=message):
        emulate(fp16_model, feed)


def test_plan_is_reused_and_thread_safe(fp16_model: Any) -> None:
    emulator = Emulator(fp16_model)
    rng = np.random.default_rng(2)
    feeds = [rng.normal(size=(8, 4)).astype(np.float32) * 10 for _ in range(16)]
    expected = [emulator.run({"x0": f}) for f in feeds]
    results: dict[int, Any] = {}

    def work(i: int) -> None:
        for _ in range(20):
            results[i] = emulator.run({"x0": feeds[i]})

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(feeds))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, want in enumerate(expected):
        for name in want:
            np.testing.assert_array_equal(results[i][name], want[name])


def test_emulate_caches_the_plan_per_model(fp16_model: Any) -> None:
    from pytest_coreml_parity.emulator import _emulator_for, planned
    from pytest_coreml_parity.headroom import emulator_for

    assert _emulator_for(fp16_model, "main") is _emulator_for(fp16_model, "main")
    # One cache: the runner, emulate() and the headroom recording share one plan.
    assert emulator_for(fp16_model) is planned(fp16_model) is _emulator_for(fp16_model, "main")
    assert emulator_for(fp16_model, "float32") is not planned(fp16_model)


def test_multifunction_package_runs_the_function_asked_for(tmp_path: Path) -> None:
    torch.manual_seed(3)
    first = support.convert(TwoLinear(), (torch.randn(2, 16),), precision="fp32")
    second_model = torch.nn.Sequential(torch.nn.Linear(16, 4)).eval()
    second = support.convert(second_model, (torch.randn(2, 16),), precision="fp32")
    first_path, second_path = tmp_path / "a.mlpackage", tmp_path / "b.mlpackage"
    first.save(str(first_path))
    second.save(str(second_path))
    desc = ct.utils.MultiFunctionDescriptor()
    desc.add_function(str(first_path), src_function_name="main", target_function_name="first")
    desc.add_function(str(second_path), src_function_name="main", target_function_name="second")
    desc.default_function_name = "first"
    combined = tmp_path / "combined.mlpackage"
    ct.utils.save_multifunction(desc, str(combined))

    x = np.random.default_rng(4).normal(size=(2, 16)).astype(np.float32)
    want_second = next(iter(emulate(second, {"x0": x}).values()))
    got_second = next(iter(emulate(combined, {"x0": x}, function_name="second").values()))
    np.testing.assert_array_equal(got_second, want_second)
    want_first = next(iter(emulate(first, {"x0": x}).values()))
    got_default = next(iter(emulate(combined, {"x0": x}).values()))
    np.testing.assert_array_equal(got_default, want_first)


def test_fast_fp16_rounding_is_bit_identical_to_numpy() -> None:
    """Large arrays round through torch's F16C path: it must equal numpy's IEEE rounding."""
    from pytest_coreml_parity.emulator.dtypes import (
        F16,
        FAST_ROUND_MIN_SIZE,
        _fast_fp16_round,
        storer,
    )

    assert _fast_fp16_round() is not None  # torch is installed: the fast path is taken

    rng = np.random.default_rng(5)
    n = 1 << 18
    assert n >= FAST_ROUND_MIN_SIZE
    magnitudes = np.float32(10.0) ** rng.uniform(-9, 6, n).astype(np.float32)
    x = (rng.standard_normal(n).astype(np.float32) * magnitudes).astype(np.float32)
    ties = (np.arange(1, 2049, dtype=np.float32) + np.float32(0.5)) * np.float32(2.0**-10)  # halfway
    edges = np.array(
        [65504, 65519.996, 65520, -65520, 2.0**-24, 2.0**-25, 3 * 2.0**-26, 6e-8, -0.0,
         np.inf, -np.inf, np.nan, 1e30],
        dtype=np.float32,
    )
    x[: ties.size] = ties
    x[ties.size : ties.size + edges.size] = edges
    with np.errstate(over="ignore"):  # 1e30 and 65520 overflow on purpose
        fast = storer(F16)(x)
        reference = x.astype(np.float16).astype(np.float32)
    np.testing.assert_array_equal(fast, reference)
    assert np.signbit(fast[ties.size + 8])  # -0.0 keeps its sign


def test_compiled_and_interpreted_runs_agree(fp16_model: Any) -> None:
    """The generated function and the step interpreter compute the same values, bit for bit."""
    from pytest_coreml_parity.emulator.execute import bind_inputs
    from pytest_coreml_parity.emulator.interpret import run_block

    emulator = Emulator(fp16_model)
    assert emulator.compiled
    a = np.random.default_rng(6).normal(size=(8, 4)).astype(np.float32) * 300
    compiled = emulator.record({"x0": a}).values
    env: dict[str, Any] = {}
    with np.errstate(all="ignore"):
        run_block(emulator.plan.block, env, bind_inputs(emulator.plan, {"x0": a}))
    assert set(env) == set(compiled)
    for name, value in env.items():
        np.testing.assert_array_equal(compiled[name].astype(np.float32), value)


def test_a_failing_kernel_is_reported_with_its_op() -> None:
    from coremltools.converters.mil import Builder as mb

    @mb.program(
        input_specs=[mb.TensorSpec(shape=(3,), dtype=ct.converters.mil.mil.types.int32)],
        opset_version=ct.target.iOS16,
    )
    def prog(x: Any) -> Any:
        return mb.floor_div(x=np.array([7, 8, 9], dtype=np.int32), y=x, name="divide")

    mlmodel = ct.convert(prog, convert_to="mlprogram", minimum_deployment_target=ct.target.iOS16)
    emulator = Emulator(mlmodel)
    assert emulator.compiled
    np.testing.assert_array_equal(
        emulator.run({"x": np.array([2, -3, 4], np.int32)})["divide"], [3, -3, 2]
    )
    with pytest.raises(KernelError, match=r"floor_div op 'divide' \(opset iOS16\) failed: UnspecifiedResultError"):
        emulator.run({"x": np.array([1, 0, 1], np.int32)})


def test_unknown_rank_program_is_an_unsupported_feature() -> None:
    """fill with a flexible-length shape input has an output of unknown rank, which
    coremltools' milproto loader cannot read back: a loud unsupported error, at load."""
    from coremltools.converters.mil import Builder as mb
    from coremltools.converters.mil.mil import get_new_symbol

    from pytest_coreml_parity.emulator import UnsupportedFeatureError, UnsupportedOpError

    int32 = ct.converters.mil.mil.types.int32

    @mb.program(input_specs=[mb.TensorSpec(shape=(get_new_symbol(),), dtype=int32)], opset_version=ct.target.iOS15)
    def prog(shape: Any) -> Any:
        return mb.fill(shape=shape)

    inputs = [ct.TensorType(name="shape", shape=(ct.RangeDim(1, 5),), dtype=np.int32)]
    mlmodel = ct.convert(prog, convert_to="mlprogram", inputs=inputs, minimum_deployment_target=ct.target.iOS15)
    with pytest.raises(UnsupportedFeatureError, match="milproto loader cannot read it") as info:
        Emulator(mlmodel)
    assert not isinstance(info.value, UnsupportedOpError)  # a sibling, with its own fields
    assert info.value.feature.startswith("this program")
    assert info.value.where == f"MLModel at {mlmodel.package_path}"


def test_an_attribute_value_a_kernel_does_not_model_is_unsupported() -> None:
    from coremltools.converters.mil import Builder as mb

    from pytest_coreml_parity.emulator import UnsupportedFeatureError

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 1, 4, 4))], opset_version=ct.target.iOS15)
    def prog(x: Any) -> Any:
        roi = np.array([[0, 0, 0, 1, 1]], np.float32).reshape(1, 1, 5, 1, 1)
        return mb.crop_resize(
            x=x, roi=roi, target_height=2, target_width=2, normalized_coordinates=True,
            sampling_mode="UNALIGN_CORNERS", name="crop",
        )

    emulator = Emulator(ct.convert(prog, convert_to="mlprogram", minimum_deployment_target=ct.target.iOS15))
    with pytest.raises(UnsupportedFeatureError, match=r"UNALIGN_CORNERS.*crop_resize op 'crop"):
        emulator.run({"x": np.zeros((1, 1, 4, 4), np.float32)})


class ExactOps(torch.nn.Module):
    """Data movement and selection ops, whose fp16 outputs the runner does not re-round."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (2, 4, 8, 8)
        y = torch.nn.functional.max_pool2d(torch.relu(x), 2)  # (2, 4, 4, 4)
        y = torch.nn.functional.pixel_shuffle(y, 2)  # (2, 1, 8, 8)
        z = torch.cat([y, torch.flip(y, [-1])], 1).permute(0, 2, 3, 1).reshape(2, 8, 16)
        a, b = z.split(8, dim=-1)
        w = torch.where(a > b, a, b).clamp(min=-1.0).floor() * 1.1  # mul must still round
        w = torch.nn.functional.hardswish(w)  # thresholded_relu (exact), sigmoid_hard, mul
        return torch.stack([w, torch.maximum(a, b), z[:, :, ::2].amax(-1, keepdim=True).expand(2, 8, 8)], 0)


@pytest.mark.parametrize("target", ["iOS15", "iOS16"])
def test_exact_ops_keep_fp16_values_representable(target: str) -> None:
    """Every fp16-typed value of a run is a binary16 number, including the outputs of ops
    whose rounding the runner skips (registry.EXACT_OPS)."""
    from pytest_coreml_parity.emulator.execute import execute
    from pytest_coreml_parity.emulator.registry import EXACT_OPS

    x = torch.randn(2, 4, 8, 8) * 1000
    mlmodel = support.convert(ExactOps(), (x,), target=target, precision="fp16")
    emulator = Emulator(mlmodel)
    skipped = [
        step.ctx.op_type
        for step in emulator.plan.block.steps
        if step.ctx.op_type in EXACT_OPS and step.ctx.output_dtypes[0] == np.float16
    ]
    assert len(skipped) >= 5, "the model should exercise several exact ops"
    _outputs, env = execute(
        emulator.plan, {"x0": x.numpy()}, compiled=emulator._compiled, record=True
    )
    for name, value in env.items():
        if emulator.plan.var_dtypes.get(name) == np.float16:
            with np.errstate(over="ignore"):
                rounded = value.astype(np.float16).astype(np.float32)
            np.testing.assert_array_equal(value, rounded, err_msg=f"{name} is not fp16-representable")
    support.assert_close_to_torch(ExactOps(), (x,), target=target, precision="fp16")


def test_program_whose_ops_all_materialize_at_load_runs() -> None:
    """A program of constexpr ops only: nothing is left to run, the outputs are constants."""
    from coremltools.converters.mil import Builder as mb

    @mb.program(input_specs=[], opset_version=ct.target.iOS16)
    def prog() -> Any:
        return mb.constexpr_affine_dequantize(
            quantized_data=np.array([[1, 2], [3, 4]], dtype=np.int8),
            zero_point=np.int8(1),
            scale=np.float32(0.5),
            axis=0,
            name="weights",
        )

    emulator = Emulator(prog_to_model(prog))
    assert emulator.plan.block.steps == ()
    (out,) = emulator.run({}).values()
    np.testing.assert_array_equal(out, [[0.0, 0.5], [1.0, 1.5]])


def prog_to_model(prog: Any) -> Any:
    return support.convert_program(prog, ct.target.iOS16)


def test_float32_execution_keeps_fp16_intermediates_wide(fp16_model: Any) -> None:
    """fp16_execution="float32" models a CPU running fp16-typed ops in fp32: rb*rb = 90000
    survives; the model's fp16 inputs and outputs keep their type."""
    a = np.array([[300.0, 1.0, 300.0, 1.0]] * 8, dtype=np.float32)
    expected = ComplexDiv()(torch.from_numpy(a)).numpy()
    (typed,) = emulate(fp16_model, {"x0": a}).values()
    (wide,) = emulate(fp16_model, {"x0": a}, fp16_execution="float32").values()
    assert np.isnan(typed[:, 0]).all()  # (ra*rb + ia*ib) / den = inf / inf
    assert wide.dtype == np.float16
    np.testing.assert_allclose(wide.astype(np.float32), expected, rtol=1e-3)
    huge = a.copy()
    huge[0, 0] = 70000.0  # still inf on the way in: the input is declared fp16
    (wide,) = emulate(fp16_model, {"x0": huge}, fp16_execution="float32").values()
    assert np.isinf(wide[0, 0])
    with pytest.raises(ValueError, match="fp16_execution='fp64'"):
        Emulator(fp16_model, fp16_execution="fp64")


class Rank0Outputs(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x.sum(), torch.linalg.norm(x)


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_rank0_outputs_have_shape_1_as_core_ml_returns_them(precision: str) -> None:
    """MLModel.predict returns a rank-0 output with shape (1,) (coremltools' torch test
    utils rely on it); the emulator's outputs do too. Recorded values keep the declared
    shape ()."""
    x = support.randn(3, 4, seed=1)
    mlmodel = support.convert(Rank0Outputs(), (x,), precision=precision)
    names = [o.name for o in mlmodel.get_spec().description.output]
    assert all(list(o.type.multiArrayType.shape) == [] for o in mlmodel.get_spec().description.output)
    feed = {"x0": x.numpy()}
    emulator = Emulator(mlmodel)
    outputs = emulator.run(feed)
    recording = emulator.record(feed)
    plain = emulate(mlmodel, feed)
    recorded = emulate(mlmodel, feed, record=True)
    want = support.torch_outputs(Rank0Outputs(), (x,))
    rtol = 1e-5 if precision == "fp32" else 2e-3
    for name, expected in zip(names, want, strict=True):
        assert expected.shape == ()
        assert outputs[name].shape == (1,)
        assert plain[name].shape == (1,)
        assert recording.outputs[name].shape == (1,)
        assert recording.values[name].shape == ()
        assert recorded[name].shape == ()
        assert outputs[name].dtype == (np.float16 if precision == "fp16" else np.float32)
        np.testing.assert_allclose(outputs[name][0].astype(np.float64), expected, rtol=rtol)
        np.testing.assert_array_equal(outputs[name].reshape(()), recording.values[name])


def test_rank0_outputs_of_an_interpreted_block_have_shape_1() -> None:
    """The same through the interpreter (a top-level cond keeps the block interpreted)."""
    from coremltools.converters.mil import Builder as mb

    @mb.program(input_specs=[mb.TensorSpec(shape=(3,))], opset_version=ct.target.iOS16)
    def prog(x: Any) -> Any:
        total = mb.reduce_sum(x=x, axes=[0], keep_dims=False)
        positive = mb.greater(x=total, y=np.float32(0))
        return mb.cond(
            pred=positive, _true_fn=lambda: mb.mul(x=total, y=np.float32(2)),
            _false_fn=lambda: mb.mul(x=total, y=np.float32(-1)), name="out",
        )

    emulator = Emulator(prog_to_model(prog))
    assert not emulator.compiled
    (out,) = emulator.run({"x": np.array([1, 2, 3], np.float32)}).values()
    assert out.shape == (1,)
    np.testing.assert_array_equal(out, [12.0])


def test_fast_fp16_input_store_and_output_cast_are_bit_identical_to_numpy() -> None:
    """Inputs (``store``) and fp16 outputs (``to_declared``) go through torch when large:
    both must equal numpy's IEEE conversion, overflow, subnormals, ties and -0.0 included."""
    from pytest_coreml_parity.emulator.dtypes import F16, FAST_ROUND_MIN_SIZE, store, to_declared

    rng = np.random.default_rng(7)
    n = 4 * FAST_ROUND_MIN_SIZE
    x = (rng.standard_normal(n) * np.float32(10.0) ** rng.uniform(-9, 6, n)).astype(np.float32)
    edges = np.array(
        [65504, 65519.996, 65520, -65520, 2.0**-24, 2.0**-25, 3 * 2.0**-26, -0.0, np.inf, np.nan, 1e30],
        dtype=np.float32,
    )
    ties = (np.arange(1, 1025, dtype=np.float32) + np.float32(0.5)) * np.float32(2.0**-10)
    x[: edges.size] = edges
    x[edges.size : edges.size + ties.size] = ties
    with np.errstate(over="ignore"):
        reference = x.astype(np.float16)
        stored = store(x, F16)
        declared = to_declared(x, F16)
    assert stored is not x and stored.dtype == np.float32
    np.testing.assert_array_equal(stored, reference.astype(np.float32))
    assert declared.dtype == np.float16
    np.testing.assert_array_equal(declared.view(np.uint16), reference.view(np.uint16))
    readonly = x.copy()
    readonly.flags.writeable = False  # torch.from_numpy refuses it: numpy's path, same bits
    with np.errstate(over="ignore"):
        np.testing.assert_array_equal(to_declared(readonly, F16).view(np.uint16), reference.view(np.uint16))


def test_torch_fast_paths_take_reversed_views() -> None:
    """numpy flags a view reversed along a size-1 axis C-contiguous; torch refuses its
    negative stride, so the fast paths must copy (or skip) it. coremltools' reverse lstm
    tests with one time step hit this."""
    import torch

    from pytest_coreml_parity.emulator.dtypes import F16, FAST_ROUND_MIN_SIZE, storer
    from pytest_coreml_parity.emulator.kernels import recurrent
    from pytest_coreml_parity.emulator.kernels._torch import tensor

    big = np.linspace(-3, 3, FAST_ROUND_MIN_SIZE, dtype=np.float32).reshape(1, -1)[::-1]
    assert big.flags.c_contiguous and big.strides[0] < 0
    np.testing.assert_array_equal(tensor(torch, big).numpy(), big)
    np.testing.assert_array_equal(storer(F16)(big), big.astype(np.float16).astype(np.float32))
    rng = np.random.default_rng(12)
    x = rng.standard_normal((1, 2, 3)).astype(np.float32)
    h = c = np.zeros((2, 4), np.float32)
    w_ih, w_hh = rng.standard_normal((16, 3)).astype(np.float32), rng.standard_normal((16, 4)).astype(np.float32)
    ys, _, _ = recurrent._lstm_direction(
        x, h, c, w_ih, w_hh, np.zeros(16, np.float32), np.zeros(12, np.float32), range(0, -1, -1),
        recurrent._TORCH_LSTM_ACTS, None,
    )
    assert ys.shape == (1, 2, 4)


def test_fast_fp16_rounding_takes_any_layout() -> None:
    """Transposed, sliced and read-only float32 arrays (a transpose's or a broadcast's
    output) round through torch too: the same bits as numpy's conversion, the shape
    kept, the input untouched."""
    from pytest_coreml_parity.emulator.dtypes import (
        F16,
        FAST_ROUND_MIN_SIZE,
        store,
        storer,
        to_declared,
    )

    rng = np.random.default_rng(21)
    base = (rng.standard_normal((64, 4 * FAST_ROUND_MIN_SIZE // 64)) * 3e4).astype(np.float32)
    base[0, :4] = [65519.996, 65520, 2.0**-25, -0.0]
    readonly = base.copy()
    readonly.flags.writeable = False
    broadcast = np.broadcast_to(base[:1], base.shape)  # read-only, zero stride
    for arr in (base.T, base[:, ::3], base[::2, 1:], readonly, broadcast, readonly.T):
        before = arr.copy()
        with np.errstate(over="ignore"):
            want = arr.astype(np.float16)
            for got in (storer(F16)(arr), store(arr, F16)):
                assert got.shape == arr.shape and got.dtype == np.float32
                np.testing.assert_array_equal(got, want.astype(np.float32))
                assert np.array_equal(np.signbit(got), np.signbit(want))
            declared = to_declared(arr, F16)
        assert declared.dtype == np.float16
        np.testing.assert_array_equal(declared.view(np.uint16), want.view(np.uint16))
        np.testing.assert_array_equal(arr, before)


def test_float64_fp16_rounding_is_bit_identical_to_numpy() -> None:
    """A float64 kernel result (the norms' affine step) rounds to fp16 through
    round-to-odd float32 and torch: one correct rounding, as numpy's direct float64 ->
    binary16 conversion, ties nudged by a float64 hair either way included (where
    rounding to nearest float32 first would round twice)."""
    from pytest_coreml_parity.emulator.dtypes import F16, FAST_ROUND_MIN_SIZE, store, storer

    rng = np.random.default_rng(22)
    n = 1 << 17
    assert n >= FAST_ROUND_MIN_SIZE
    x = rng.standard_normal(n) * 10.0 ** rng.uniform(-12, 8, n)
    m = 20000
    k = rng.integers(1, 2048, m).astype(np.float64)
    ties = (k + 0.5) * 2.0 ** (rng.integers(-24, 16, m) - 10).astype(np.float64)
    ties = np.where(ties < 2**-14, (np.floor(ties * 2**24) + 0.5) * 2**-24, ties)  # subnormal ties
    nudge = ties * rng.choice([-1, 0, 1], m) * 2.0 ** rng.integers(-52, -20, m)
    x[:m] = (ties + nudge) * rng.choice([-1, 1], m)
    edges = [65504, 65519.999999, 65520, 65520.0000001, -65520.0000001, 2**-25, 2**-25 + 2**-60,
             2**-25 - 2**-60, 3 * 2**-26, 1e300, -1e300, 1e-300, -1e-300, 0.0, -0.0, np.inf, -np.inf,
             np.nan, 3.4028235e38, 3.5e38, 2**-149, 2**-150, 1 + 2**-11 + 2**-40]  # fmt: skip
    x[m : m + len(edges)] = edges
    with np.errstate(all="ignore"):
        for arr in (x, x[::3], x.reshape(2, -1).T):
            want = arr.astype(np.float16).astype(np.float32)
            for got in (storer(F16)(arr), store(arr, F16)):
                assert got.dtype == np.float32 and got.shape == arr.shape
                same = (got.view(np.uint32) == want.view(np.uint32)) | (np.isnan(got) & np.isnan(want))
                assert same.all(), arr[~same][:5]
