"""Stateful models (iOS18 ``read_state`` / ``coreml_update_state``) against torch.

Real torch modules with registered buffers, traced and converted with
``ct.StateType`` by real coremltools; the emulator runs several predictions with one
state and must track the torch module run as many times. coremltools 9.0 only
converts fp16 states (``ct.StateType(wrapped_type=ct.TensorType(dtype=np.float16))``),
also for FLOAT32 compute precision, where the program casts around each state access.
So the exact references here are torch modules whose buffer is rounded to fp16 after
each step; the plain float32 torch module is compared at fp16 tolerances.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch

from pytest_coreml_parity.emulator import (
    Emulator,
    EmulatorState,
    InputError,
    KernelError,
    emulate,
)
from pytest_coreml_parity.emulator.execute import execute

from . import support
from .support import TOLERANCES, ct

ROWS, COLS = 4, 8
L, D = 6, 4


def _round_buffers(module: torch.nn.Module) -> None:
    """What an fp16 state does to a value written into it."""
    with torch.no_grad():
        for buf in module.buffers():
            buf.copy_(buf.half().float())


class Accumulator(torch.nn.Module):
    """``round_state``: the exact reference, rounding the buffer as an fp16 state stores it."""

    def __init__(self, round_state: bool = False) -> None:
        super().__init__()
        self.round_state = round_state
        self.register_buffer("acc", torch.zeros(ROWS, COLS))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.acc.add_(x)
        if self.round_state:
            _round_buffers(self)
        return self.acc * 2.0 + x


class KVCache(torch.nn.Module):
    """Write this step's key and value at ``pos``, then attend over the whole cache."""

    def __init__(self, round_state: bool = False) -> None:
        super().__init__()
        self.round_state = round_state
        self.register_buffer("k_cache", torch.zeros(1, L, D))
        self.register_buffer("v_cache", torch.zeros(1, L, D))

    def forward(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, pos: torch.Tensor
    ) -> torch.Tensor:
        p = pos[0]
        self.k_cache[:, p : p + 1, :] = k
        self.v_cache[:, p : p + 1, :] = v
        if self.round_state:
            _round_buffers(self)
        scores = torch.matmul(q, self.k_cache.transpose(1, 2)) / 2.0
        return torch.matmul(torch.softmax(scores, dim=-1), self.v_cache)


def _convert(
    factory: Callable[[], torch.nn.Module],
    example: tuple[torch.Tensor, ...],
    inputs: list[Any],
    states: dict[str, tuple[int, ...]],
    precision: str,
) -> Any:
    # Tracing runs forward, which updates the buffers: trace a throwaway instance.
    traced = torch.jit.trace(factory().eval(), example, check_trace=False)
    return ct.convert(
        traced,
        inputs=inputs,
        outputs=[ct.TensorType(name="y")],
        states=[
            ct.StateType(wrapped_type=ct.TensorType(shape=shape, dtype=np.float16), name=name)
            for name, shape in states.items()
        ],
        convert_to="mlprogram",
        minimum_deployment_target=ct.target.iOS18,
        compute_precision=ct.precision.FLOAT32 if precision == "fp32" else ct.precision.FLOAT16,
    )


_MODELS: dict[tuple[str, str], Any] = {}


def accumulator_model(precision: str) -> Any:
    key = ("acc", precision)
    if key not in _MODELS:
        _MODELS[key] = _convert(
            Accumulator,
            (torch.zeros(ROWS, COLS),),
            [ct.TensorType(name="x", shape=(ROWS, COLS))],
            {"acc": (ROWS, COLS)},
            precision,
        )
    return _MODELS[key]


def kv_model(precision: str) -> Any:
    key = ("kv", precision)
    if key not in _MODELS:
        example = (torch.zeros(1, 1, D),) * 3 + (torch.tensor([2], dtype=torch.int32),)
        _MODELS[key] = _convert(
            KVCache,
            example,
            [ct.TensorType(name=n, shape=(1, 1, D)) for n in "qkv"]
            + [ct.TensorType(name="pos", shape=(1,), dtype=np.int32)],
            {"k_cache": (1, L, D), "v_cache": (1, L, D)},
            precision,
        )
    return _MODELS[key]


def _assert_close(got: np.ndarray, want: np.ndarray, tol: tuple[float, float]) -> None:
    rtol, atol = tol
    scale = max(1.0, float(np.max(np.abs(want))))
    np.testing.assert_allclose(np.asarray(got, np.float32), want, rtol=rtol, atol=atol * scale)


def _accumulator_steps(seed: int) -> list[np.ndarray]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(ROWS, COLS, generator=g).numpy() for _ in range(3)]


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_accumulator_tracks_torch_over_three_predictions(precision: str) -> None:
    emulator = Emulator(accumulator_model(precision))
    assert [s.name for s in emulator.inputs] == ["x"]
    assert [(s.name, s.dtype, s.shape) for s in emulator.states] == [
        ("acc", np.dtype(np.float16), (ROWS, COLS))
    ]
    state = emulator.make_state()
    plain, stored = Accumulator().eval(), Accumulator(round_state=True).eval()  # fresh buffers
    for x in _accumulator_steps(1):
        got = emulator.run({"x": x}, state=state)["y"]
        with torch.no_grad():
            want_plain = plain(torch.from_numpy(x)).numpy()
            want_stored = stored(torch.from_numpy(x)).numpy()
        _assert_close(got, want_plain, TOLERANCES["fp16"])
        _assert_close(state["acc"], plain.acc.numpy(), TOLERANCES["fp16"])
        if precision == "fp32":  # the state is the only fp16 storage: exact up to fp32
            _assert_close(got, want_stored, TOLERANCES["fp32"])
            np.testing.assert_array_equal(state["acc"], stored.acc.numpy().astype(np.float16))
        assert state["acc"].dtype == np.float16


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_kv_cache_tracks_torch_step_by_step(precision: str) -> None:
    emulator = Emulator(kv_model(precision))
    assert {s.name for s in emulator.inputs} == {"q", "k", "v", "pos"}
    state = emulator.make_state()
    plain, stored = KVCache().eval(), KVCache(round_state=True).eval()
    g = torch.Generator().manual_seed(2)
    for step in range(L):
        q, k, v = (torch.randn(1, 1, D, generator=g) for _ in range(3))
        pos = torch.tensor([step], dtype=torch.int32)
        feed = {"q": q.numpy(), "k": k.numpy(), "v": v.numpy(), "pos": pos.numpy()}
        got = emulator.run(feed, state=state)["y"]
        with torch.no_grad():
            want_plain = plain(q, k, v, pos).numpy()
            want_stored = stored(q, k, v, pos).numpy()
        _assert_close(got, want_plain, TOLERANCES["fp16"])
        for name in ("k_cache", "v_cache"):
            np.testing.assert_array_equal(
                state[name], getattr(stored, name).numpy().astype(np.float16)
            )
        if precision == "fp32":
            _assert_close(got, want_stored, TOLERANCES["fp32"])
        # Rows not yet written are still the zeros make_state gave.
        assert not state["k_cache"][:, step + 1 :].any()


def test_make_state_is_zeros_and_user_values_are_honoured() -> None:
    emulator = Emulator(accumulator_model("fp32"))
    state = emulator.make_state()
    assert isinstance(state, EmulatorState)
    assert list(state) == ["acc"] and len(state) == 1
    assert state["acc"].dtype == np.float16 and state["acc"].shape == (ROWS, COLS)
    assert not state["acc"].any()
    x = np.ones((ROWS, COLS), np.float32)

    state["acc"] = np.full((ROWS, COLS), 10.0)
    np.testing.assert_array_equal(emulator.run({"x": x}, state=state)["y"], 2 * 11.0 + 1)
    np.testing.assert_array_equal(state["acc"], 11.0)

    fresh = emulator.make_state()  # a fresh state starts from zeros again
    np.testing.assert_array_equal(emulator.run({"x": x}, state=fresh)["y"], 2 * 1.0 + 1)
    np.testing.assert_array_equal(emulator.run({"x": x}, state=fresh)["y"], 2 * 2.0 + 1)
    np.testing.assert_array_equal(state["acc"], 11.0)  # the other state is untouched

    copy = state["acc"]  # reading gives a copy: editing it does not change the state
    copy[:] = 99
    np.testing.assert_array_equal(state["acc"], 11.0)


def test_emulate_and_record_take_a_state() -> None:
    model = accumulator_model("fp32")
    state = Emulator(model).make_state()
    x = np.ones((ROWS, COLS), np.float32)
    np.testing.assert_array_equal(emulate(model, {"x": x}, state=state)["y"], 3.0)
    values = emulate(model, {"x": x}, state=state, record=True)
    np.testing.assert_array_equal(values["y"], 5.0)
    np.testing.assert_array_equal(values["acc"], 1.0)  # the state as the run found it
    assert values["acc"].dtype == np.float16
    np.testing.assert_array_equal(state["acc"], 2.0)


def test_state_errors() -> None:
    emulator = Emulator(accumulator_model("fp32"))
    x = {"x": np.ones((ROWS, COLS), np.float32)}
    with pytest.raises(
        InputError, match=r"state inputs \['acc'\]; pass state=emulator.make_state\(\)"
    ):
        emulator.run(x)
    with pytest.raises(InputError, match=r"pass state=emulator\.make_state"):
        emulate(accumulator_model("fp32"), x)
    other = Emulator(kv_model("fp32")).make_state()
    with pytest.raises(InputError, match="does not belong to this model"):
        emulator.run(x, state=other)
    with pytest.raises(InputError, match="must be an EmulatorState"):
        emulator.run(x, state={"acc": np.zeros((ROWS, COLS))})  # type: ignore[arg-type]
    with pytest.raises(InputError, match=r"\['acc'\] are states: pass them with state="):
        emulator.run({**x, "acc": np.zeros((ROWS, COLS))}, state=emulator.make_state())

    state = emulator.make_state()
    with pytest.raises(
        InputError, match=r"state 'acc' has shape \(2, 2\); the model declares \(4, 8\)"
    ):
        state["acc"] = np.zeros((2, 2))
    with pytest.raises(KeyError, match="no state named 'nope'"):
        state["nope"] = np.zeros((ROWS, COLS))


def test_stateless_model_takes_only_an_empty_state() -> None:
    class Double(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x * 2.0

    traced = torch.jit.trace(Double().eval(), (torch.zeros(3),))
    model = ct.convert(
        traced,
        inputs=[ct.TensorType(name="x", shape=(3,))],
        convert_to="mlprogram",
        minimum_deployment_target=ct.target.iOS18,
    )
    emulator = Emulator(model)
    assert emulator.states == ()
    empty = emulator.make_state()
    assert len(empty) == 0
    (out,) = emulator.run({"x": np.ones(3, np.float32)}, state=empty).values()
    np.testing.assert_array_equal(out, 2.0)
    with pytest.raises(InputError, match=r"no state inputs, but the state given holds \['acc'\]"):
        emulator.run(
            {"x": np.ones(3, np.float32)}, state=Emulator(accumulator_model("fp32")).make_state()
        )


def _mil_state_model() -> Any:
    """acc += x * 3 (fp16 state and math), then gather acc at ``index``."""
    from coremltools.converters.mil import Builder as mb
    from coremltools.converters.mil.mil import types

    @mb.program(
        input_specs=[
            mb.StateTensorSpec((4,), dtype=types.fp16),
            mb.TensorSpec((4,), dtype=types.fp16),
            mb.TensorSpec((1,), dtype=types.int32),
        ],
        opset_version=ct.target.iOS18,
    )
    def prog(acc: Any, x: Any, index: Any) -> Any:
        scaled = mb.mul(x=x, y=np.float16(3), name="scaled")
        summed = mb.add(x=mb.read_state(input=acc, name="before"), y=scaled, name="summed")
        updated = mb.coreml_update_state(state=acc, value=summed)
        # What the stored value lost to rounding, seen by a later op of the same run
        # (the state starts at zero, so summed == scaled before rounding; the converter
        # points every later use of ``summed`` at the update, so compare with ``scaled``).
        residual = mb.sub(x=updated, y=scaled, name="residual")
        return mb.gather(x=updated, indices=index, name="picked"), residual

    return support.convert_program(prog, ct.target.iOS18, "fp16")


def test_stored_values_are_rounded_to_fp16() -> None:
    model = _mil_state_model()
    names = [spec.name for spec in Emulator(model).inputs]
    x_name, index_name = names
    x = np.array([0.1, 1 / 3, 1000.7, 2049.0], np.float16)
    feed = {x_name: x, index_name: np.array([1], np.int32)}
    # In float32 execution the mul and add are held unrounded; the state is fp16 anyway.
    held = (x.astype(np.float32) * 3).astype(np.float32)
    assert not np.array_equal(held.astype(np.float16).astype(np.float32), held)
    for mode in ("typed", "float32"):
        emulator = Emulator(model, fp16_execution=mode)
        state = emulator.make_state()
        recording = emulator.record(feed, state=state)
        expected = held.astype(np.float16) if mode == "float32" else (x * np.float16(3))
        np.testing.assert_array_equal(state["acc"], expected)
        # The loader renames the update (a saved program holds write_state + read_state).
        (update,) = (op for op in recording.ops if op.op_type == "coreml_update_state")
        (written,) = recording.op_outputs(update)
        np.testing.assert_array_equal(written, expected)
        assert written.dtype == np.float16
        np.testing.assert_array_equal(recording.outputs["picked"], expected[1:2])
        # Later ops read the stored (rounded) value: in float32 execution the unrounded
        # sum differs from it, so the residual is the rounding error, not zero.
        lost = (expected.astype(np.float32) - held).astype(np.float16)
        want_residual = lost if mode == "float32" else np.zeros(4, np.float16)
        if mode == "float32":
            assert np.any(lost != 0)
        np.testing.assert_array_equal(recording.outputs["residual"], want_residual)

    # Values set by the user are rounded as inputs are.
    state = Emulator(model).make_state()
    state["acc"] = np.array([0.1, 1 / 3, 70000.0, 1e-8])
    np.testing.assert_array_equal(
        state["acc"], np.array([0.1, 1 / 3, np.inf, 1e-8], np.float64).astype(np.float16)
    )
    assert state["acc"][0] != np.float32(0.1)


def test_a_failing_run_leaves_the_state_unchanged() -> None:
    emulator = Emulator(_mil_state_model())
    x_name, index_name = (spec.name for spec in emulator.inputs)
    state = emulator.make_state()
    ones = np.ones(4, np.float16)
    emulator.run({x_name: ones, index_name: np.array([0], np.int32)}, state=state)
    np.testing.assert_array_equal(state["acc"], 3.0)
    with pytest.raises(KernelError, match="gather op 'picked"):  # index out of range
        emulator.run({x_name: ones, index_name: np.array([7], np.int32)}, state=state)
    np.testing.assert_array_equal(state["acc"], 3.0)  # the update before it was not kept
    emulator.run({x_name: ones, index_name: np.array([0], np.int32)}, state=state)
    np.testing.assert_array_equal(state["acc"], 6.0)


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
@pytest.mark.parametrize("which", ["accumulator", "kv"])
def test_interpreter_and_compiled_paths_agree(which: str, precision: str) -> None:
    model = accumulator_model(precision) if which == "accumulator" else kv_model(precision)
    emulator = Emulator(model)
    assert emulator.compiled
    states = emulator.make_state(), emulator.make_state()
    rng = np.random.default_rng(3)
    for step in range(3):
        feed: dict[str, Any] = {}
        for spec in emulator.inputs:
            if spec.dtype.kind == "i":
                feed[spec.name] = np.array([step], np.int32)
            else:
                feed[spec.name] = rng.normal(size=spec.shape).astype(np.float32)
        a, env_a = execute(
            emulator.plan, feed, compiled=emulator._compiled, state=states[0], record=True
        )
        b, env_b = execute(emulator.plan, feed, state=states[1], record=True)
        assert set(env_a) == set(env_b)
        for name in a:
            np.testing.assert_array_equal(a[name], b[name])
        for name in states[0]:
            np.testing.assert_array_equal(states[0][name], states[1][name])
