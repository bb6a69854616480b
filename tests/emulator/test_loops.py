"""The fused GRU loop runner (emulator/loops.py) against the interpreter, bit for bit.

Real ``nn.GRU`` models converted by real coremltools: the layouts a user brings
(stacked, bidirectional, batch-first or not, without bias, an initial state), at
fp32 and fp16, on inputs from ordinary to far past fp16's range with nan and inf
among them. Each must take the fused path (its step function runs) and give
exactly the outputs and the recorded values of the interpreter running the same
plan op by op.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from pytest_coreml_parity.emulator import Emulator, loops
from pytest_coreml_parity.emulator.compile import compile_nested
from pytest_coreml_parity.emulator.execute import execute
from pytest_coreml_parity.emulator.kernels._torch import TORCH_MIN_SIZE

from . import support


class GRUModel(nn.Module):
    def __init__(self, inputs: int, hidden: int, *, seed: int, with_h0: bool = False, **kwargs: Any) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.rnn = nn.GRU(inputs, hidden, **kwargs)
        for p in self.rnn.parameters():  # larger than the default init: gates saturate, fp16 overflows
            p.data *= 1.5
        self.with_h0 = with_h0

    def forward(self, x: torch.Tensor, *h0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out, h = self.rnn(x, *h0) if self.with_h0 else self.rnn(x)
        return out, h


#: (GRU keyword arguments, x shape, hidden size): the layouts of real speech/text models.
CONFIGS: dict[str, tuple[dict[str, Any], tuple[int, int, int], int]] = {
    "batch_first": (dict(batch_first=True), (4, 16, 32), 64),
    "seq_first": (dict(), (7, 3, 8), 16),
    "2_layers_bidirectional": (dict(num_layers=2, bidirectional=True, batch_first=True), (2, 9, 12), 20),
    "no_bias": (dict(bias=False, batch_first=True), (2, 5, 8), 16),
    "one_step": (dict(batch_first=True), (3, 1, 8), 16),
    "wide_state": (dict(batch_first=True), (8, 6, 24), 128),  # rounds in place through torch
}


def _inputs(shape: tuple[int, ...], scale: float, seed: int) -> np.ndarray:
    x = (np.random.default_rng(seed).standard_normal(shape) * scale).astype(np.float32)
    x.reshape(-1)[:3] = [np.nan, np.inf, -70000.0]
    return x


def _assert_same(a: Any, b: Any, what: str) -> None:
    a, b = np.asarray(a), np.asarray(b)
    assert a.dtype == b.dtype and a.shape == b.shape, what
    assert np.array_equal(a, b, equal_nan=True), what


def _check_against_interpreter(
    emulator: Emulator, feeds: list[dict[str, np.ndarray]], monkeypatch: pytest.MonkeyPatch
) -> None:
    loops_in_program = sum(op.op_type == "while_loop" for op in emulator.ops)
    assert loops_in_program and len(loops.fuse_loops(emulator.plan.block)) == loops_in_program
    calls: list[int] = []
    real_steps = loops._steps

    def spy(*args: Any) -> None:
        calls.append(1)
        real_steps(*args)

    monkeypatch.setattr(loops, "_steps", spy)
    plan = emulator.plan
    for feed in feeds:
        calls.clear()
        fused = emulator.run(feed)
        assert calls, "the fused runner did not run"
        interpreted, _ = execute(plan, feed)  # every block op by op
        compiled_body, _ = execute(plan, feed, nested=compile_nested(plan.block))
        for name in plan.output_names:
            _assert_same(fused[name], interpreted[name], name)
            _assert_same(fused[name], compiled_body[name], name)
        # Recording: the last iteration runs through the general path, so every value
        # of the body is left as the interpreter leaves it.
        _, fused_env = execute(plan, feed, record=True, nested=emulator._nested)
        _, env = execute(plan, feed, record=True)
        assert fused_env.keys() == env.keys()
        for name, value in env.items():
            if isinstance(value, np.ndarray):
                _assert_same(fused_env[name], value, name)
        recording = emulator.record(feed)
        for name in plan.output_names:
            _assert_same(recording.outputs[name], interpreted[name], name)


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
@pytest.mark.parametrize("config", list(CONFIGS))
def test_fused_gru_loop_is_bit_identical_to_the_interpreter(
    config: str, precision: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    kwargs, shape, hidden = CONFIGS[config]
    model = GRUModel(shape[-1], hidden, seed=len(config), **kwargs).eval()
    mlmodel = support.convert(model, [torch.randn(*shape)], precision=precision)
    emulator = Emulator(mlmodel)
    feeds = [{"x0": _inputs(shape, scale, seed)} for seed, scale in enumerate((1.0, 30.0, 3000.0))]
    _check_against_interpreter(emulator, feeds, monkeypatch)


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_fused_gru_with_an_initial_state(precision: str, monkeypatch: pytest.MonkeyPatch) -> None:
    model = GRUModel(8, 16, seed=3, with_h0=True, num_layers=2, batch_first=True).eval()
    x, h0 = torch.randn(2, 6, 8), torch.randn(2, 2, 16)
    emulator = Emulator(support.convert(model, [x, h0], precision=precision))
    feeds = [
        {"x0": _inputs((2, 6, 8), scale, seed), "x1": _inputs((2, 2, 16), scale, seed + 7)}
        for seed, scale in enumerate((1.0, 5000.0))
    ]
    _check_against_interpreter(emulator, feeds, monkeypatch)


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")
@pytest.mark.parametrize(
    ("batch", "hidden"),
    [(4, TORCH_MIN_SIZE // 4 * 3 // 4), (4, TORCH_MIN_SIZE // 4)],
    ids=["gates_straddle_torch_sigmoid", "gates_use_torch_sigmoid"],
)
def test_fused_gru_at_the_sigmoid_kernels_size_switch(
    batch: int, hidden: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The r and z gates share one sigmoid call only where the kernel would pick the
    same float32 sigmoid (numpy's or torch's) for one gate as for both."""
    model = GRUModel(8, hidden, seed=5, batch_first=True).eval()
    emulator = Emulator(support.convert(model, [torch.randn(batch, 3, 8)], precision="fp16"))
    feeds = [{"x0": _inputs((batch, 3, 8), scale, seed)} for seed, scale in enumerate((1.0, 2.0))]
    _check_against_interpreter(emulator, feeds, monkeypatch)


class ScriptedLoop(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        for _ in range(4):
            y = y * 0.5 + torch.tanh(y)
        return y


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")
def test_other_loops_and_profiles_are_not_fused() -> None:
    """A loop that is not a GRU layer, and a GRU under another execution profile, run
    through the general path."""
    scripted = Emulator(support.convert(ScriptedLoop(), [torch.randn(2, 3)], script=True))
    assert any(op.op_type == "while_loop" for op in scripted.ops)
    assert loops.fuse_loops(scripted.plan.block) == {}
    model = GRUModel(8, 16, seed=1, batch_first=True).eval()
    mlmodel = support.convert(model, [torch.randn(2, 4, 8)], precision="fp16")
    for profile in ("float32", "fp16-sequential"):
        emulator = Emulator(mlmodel, fp16_execution=profile)
        assert loops.fuse_loops(emulator.plan.block) == {}
    assert len(loops.fuse_loops(Emulator(mlmodel).plan.block)) == 1
