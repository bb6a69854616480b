"""Recurrent layers, control flow and compressed weights: emulator vs torch and numpy.

Family tests convert real torch models at every target and precision and
compare the emulator to torch (support.assert_close_to_torch). Focused tests
build MIL programs directly to reach op variants the torch converter does not
emit (peepholes, clip, other activations, reset_after gru, rnn, vector
palettization, lists), against numpy references written here.

Compressed weights are checked twice: the decompressed weights the emulator
computes must equal an independent numpy decompression of the op's stored
parameters, and the model output must stay within a bound derived from the
actual weight error (see _compression_bound).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from pytest_coreml_parity.emulator import Emulator
from pytest_coreml_parity.emulator.compile import compile_block
from pytest_coreml_parity.emulator.execute import execute
from pytest_coreml_parity.emulator.plan import plan_function

from . import support
from .support import ct

mb = ct.converters.mil.Builder
types = ct.converters.mil.mil.types

TARGETS = list(support.TARGETS)
PRECISIONS = list(support.PRECISIONS)
grid = support.grid


_randn = support.randn


_convert_program = support.convert_program


def _run_program(prog: Any, feed: dict[str, np.ndarray]) -> dict[str, Any]:
    """Plan and run an in-memory MIL program (for ops the mlprogram backend won't serialize)."""
    function = prog.functions["main"]
    plan = plan_function(function, function_name="main", opset="test", source="test program")
    outputs, _env = execute(plan, feed, compiled=compile_block(plan.block))
    return outputs


# ================================================================ recurrent families


class LSTMModel(nn.Module):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.lstm = nn.LSTM(4, 6, **kwargs)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        y, (h, c) = self.lstm(x)
        return y, h, c


class GRUModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.gru = nn.GRU(4, 6)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y, h = self.gru(x)
        return y, h


LSTM_CASES = {
    "one_layer": ({}, (5, 2, 4)),
    "two_layers": ({"num_layers": 2}, (5, 2, 4)),
    "bidirectional": ({"bidirectional": True}, (5, 2, 4)),
    "two_layers_bidirectional_batch_first": (
        {"num_layers": 2, "bidirectional": True, "batch_first": True},
        (2, 5, 4),
    ),
}


# torch's nn.LSTM checks input sizes with Python bools while tracing; with fixed
# shapes the trace is still exact, so the TracerWarning is harmless here.
@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")
@pytest.mark.parametrize("case", list(LSTM_CASES))
@grid
def test_lstm_family(case: str, target: str, precision: str) -> None:
    kwargs, shape = LSTM_CASES[case]
    support.assert_close_to_torch(
        LSTMModel(**kwargs), [_randn(*shape, seed=1)], target=target, precision=precision
    )


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")
@grid
def test_gru_family(target: str, precision: str) -> None:
    # coremltools 9 lowers torch's GRU (reset applied after the recurrent product)
    # into a while_loop of linear/sigmoid/tanh ops rather than the MIL gru op.
    support.assert_close_to_torch(
        GRUModel(), [_randn(5, 2, 4, seed=2)], target=target, precision=precision
    )


class PackedLSTM(nn.Module):
    """coremltools' TestLSTMWithPackedSequence model: pack, lstm, pad back."""

    def __init__(self, pack_batch_first: bool, pad_batch_first: bool, lstm_batch_first: bool) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.lstm = nn.LSTM(4, 6, batch_first=lstm_batch_first)
        self.pack_batch_first = pack_batch_first
        self.pad_batch_first = pad_batch_first

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

        packed = pack_padded_sequence(x, lengths, batch_first=self.pack_batch_first)
        out, _ = self.lstm(packed)
        padded, _ = pad_packed_sequence(out, padding_value=-1, batch_first=self.pad_batch_first)
        return padded


# coremltools' converter builds the packed lstm's zero initial state with batch
# lengths[0] (10) while x has batch 3: the kernel must accept equal rows of another batch.
@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")
@pytest.mark.filterwarnings("ignore:Conversion of an array with ndim > 0 to a scalar:DeprecationWarning")
@pytest.mark.parametrize(
    ("pack_batch_first", "pad_batch_first", "lstm_batch_first"),
    [(False, False, False), (True, True, True), (False, True, False)],
)
@pytest.mark.parametrize("precision", PRECISIONS)
def test_lstm_packed_sequence_matches_torch(
    pack_batch_first: bool, pad_batch_first: bool, lstm_batch_first: bool, precision: str
) -> None:
    shape = (3, 10, 4) if pack_batch_first else (10, 3, 4)
    support.assert_close_to_torch(
        PackedLSTM(pack_batch_first, pad_batch_first, lstm_batch_first),
        [_randn(*shape, seed=8), torch.tensor([10, 5, 1], dtype=torch.int32)],
        target="iOS15",
        precision=precision,
    )


def test_lstm_initial_state_of_another_batch() -> None:
    """Equal rows of another batch run as that row broadcast; distinct rows are refused."""
    from pytest_coreml_parity.emulator import KernelError, UnspecifiedResultError

    hid = 2
    rng = np.random.default_rng(9)
    w = {
        "ih": rng.standard_normal((4 * hid, 1)).astype(np.float32),
        "hh": rng.standard_normal((4 * hid, hid)).astype(np.float32),
        "b": np.zeros(4 * hid, np.float32),
        "p": np.zeros(3 * hid, np.float32),
    }

    @mb.program(
        input_specs=[mb.TensorSpec(shape=(3, 2, 1)), mb.TensorSpec(shape=(4, hid))],
        opset_version=ct.target.iOS15,
    )
    def prog(x, h0):  # type: ignore[no-untyped-def]
        return mb.lstm(x=x, initial_h=h0, initial_c=h0, weight_ih=w["ih"], weight_hh=w["hh"])

    x = rng.standard_normal((3, 2, 1)).astype(np.float32)
    got = list(_run_program(prog, {"x": x, "h0": np.full((4, hid), 0.5, np.float32)}).values())
    state = np.full((2, hid), 0.5, np.float32)
    ys, h, c = _np_lstm(x, state, state, w, ("sigmoid", "tanh", "tanh"), None, reverse=False)
    for got_i, want_i in zip(got, [ys[-1:], h, c], strict=True):
        np.testing.assert_allclose(got_i, want_i, rtol=1e-5, atol=1e-6)
    with pytest.raises(KernelError, match="initial_h has batch 4 but x has batch 2") as info:
        _run_program(prog, {"x": x, "h0": rng.standard_normal((4, hid)).astype(np.float32)})
    assert isinstance(info.value.__cause__, UnspecifiedResultError)


# ========================================================== recurrent kernel tests


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


_NP_ACTS = {
    "sigmoid": _sigmoid,
    "tanh": np.tanh,
    "scaled_tanh": np.tanh,
    "relu": lambda x: np.maximum(x, 0.0),
    "linear": lambda x: x,
    "hard_sigmoid": lambda x: np.clip(0.2 * x + 0.5, 0.0, 1.0),
}


def _np_lstm(
    x: np.ndarray,
    h: np.ndarray,
    c: np.ndarray,
    w: dict[str, np.ndarray],
    acts: tuple[str, ...],
    clip: float | None,
    reverse: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """float64 per-gate reference in the MIL layout ([i, f, o, z] blocks)."""
    ra, ca, oa = (_NP_ACTS[a] for a in acts)
    wi, wf, wo, wz = np.split(w["ih"].astype(np.float64), 4)
    ri, rf, ro, rz = np.split(w["hh"].astype(np.float64), 4)
    bi, bf, bo, bz = np.split(w["b"].astype(np.float64), 4)
    pi, pf, po = np.split(w["p"].astype(np.float64), 3)
    h, c = h.astype(np.float64), c.astype(np.float64)
    steps = range(x.shape[0] - 1, -1, -1) if reverse else range(x.shape[0])
    ys = []
    for t in steps:
        xt = x[t].astype(np.float64)
        i = ra(xt @ wi.T + h @ ri.T + bi + pi * c)
        f = ra(xt @ wf.T + h @ rf.T + bf + pf * c)
        z = ca(xt @ wz.T + h @ rz.T + bz)
        c = f * c + i * z
        if clip is not None:
            c = np.clip(c, -clip, clip)
        o = ra(xt @ wo.T + h @ ro.T + bo + po * c)
        h = o * oa(c)
        ys.append(h)
    return np.stack(ys), h, c


@pytest.mark.parametrize(
    ("acts", "clip", "direction", "output_sequence"),
    [
        (("sigmoid", "tanh", "tanh"), None, "forward", True),
        (("sigmoid", "tanh", "relu"), 0.2, "forward", False),
        (("hard_sigmoid", "scaled_tanh", "linear"), 50.0, "reverse", True),
        (("sigmoid", "tanh", "hard_sigmoid"), 0.01, "reverse", False),
    ],
)
@pytest.mark.parametrize("precision", PRECISIONS)
def test_lstm_op_peephole_clip_activations(
    acts: tuple[str, str, str],
    clip: float | None,
    direction: str,
    output_sequence: bool,
    precision: str,
) -> None:
    rng = np.random.default_rng(3)
    seq, batch, inp, hid = 6, 2, 3, 4
    w = {
        "ih": rng.uniform(-1, 1, (4 * hid, inp)).astype(np.float32),
        "hh": rng.uniform(-1, 1, (4 * hid, hid)).astype(np.float32),
        "b": rng.uniform(-0.5, 1.5, 4 * hid).astype(np.float32),
        "p": rng.uniform(-0.5, 0.5, 3 * hid).astype(np.float32),
    }
    dtype = types.fp16 if precision == "fp16" else types.fp32
    npd = np.float16 if precision == "fp16" else np.float32
    w = {k: v.astype(npd).astype(np.float32) for k, v in w.items()}  # weights as stored

    @mb.program(
        input_specs=[
            mb.TensorSpec(shape=(seq, batch, inp), dtype=dtype),
            mb.TensorSpec(shape=(batch, hid), dtype=dtype),
            mb.TensorSpec(shape=(batch, hid), dtype=dtype),
        ],
        opset_version=ct.target.iOS17,
    )
    def prog(x, h0, c0):  # type: ignore[no-untyped-def]
        kwargs = {} if clip is None else {"clip": npd(clip)}
        return mb.lstm(
            x=x,
            initial_h=h0,
            initial_c=c0,
            weight_ih=w["ih"].astype(npd),
            weight_hh=w["hh"].astype(npd),
            bias=w["b"].astype(npd),
            peephole=w["p"].astype(npd),
            direction=direction,
            output_sequence=output_sequence,
            recurrent_activation=acts[0],
            cell_activation=acts[1],
            activation=acts[2],
            **kwargs,
        )

    x = rng.standard_normal((seq, batch, inp)).astype(npd)
    h0 = rng.standard_normal((batch, hid)).astype(npd)
    c0 = rng.standard_normal((batch, hid)).astype(npd)
    got = _run_program(prog, {"x": x, "h0": h0, "c0": c0})
    ys, h, c = _np_lstm(x, h0, c0, w, acts, clip, direction == "reverse")
    want = [ys if output_sequence else ys[-1:], h, c]
    # fp32: float32 vs float64 over 6 steps; fp16: only the outputs are rounded
    # (state stays float32 inside the op), so one fp16 rounding: rtol 2**-11.
    rtol, atol = (1e-5, 1e-6) if precision == "fp32" else (1e-3, 1e-3)
    for got_i, want_i in zip(got.values(), want, strict=True):
        assert got_i.dtype == npd
        np.testing.assert_allclose(got_i.astype(np.float64), want_i, rtol=rtol, atol=atol)


@pytest.mark.parametrize("output_sequence", [True, False])
def test_lstm_op_bidirectional_matches_torch(output_sequence: bool) -> None:
    """bidirectional aligns the backward half with input time; last step = [fwd[-1], bwd[0]]."""
    torch.manual_seed(4)
    ref = nn.LSTM(3, 4, bidirectional=True)
    sd = {k: v.detach().numpy() for k, v in ref.state_dict().items()}

    def ifoz(a: np.ndarray) -> np.ndarray:
        i, f, z, o = np.split(a, 4)
        return np.concatenate([i, f, o, z])

    x = _randn(5, 2, 3, seed=5)
    h0, c0 = _randn(2, 2, 4, seed=6), _randn(2, 2, 4, seed=7)
    with torch.no_grad():
        y, (hn, cn) = ref(x, (h0, c0))

    @mb.program(input_specs=[mb.TensorSpec(shape=(5, 2, 3))], opset_version=ct.target.iOS15)
    def prog(x):  # type: ignore[no-untyped-def]
        return mb.lstm(
            x=x,
            initial_h=np.concatenate([h0[0].numpy(), h0[1].numpy()], -1),
            initial_c=np.concatenate([c0[0].numpy(), c0[1].numpy()], -1),
            weight_ih=ifoz(sd["weight_ih_l0"]),
            weight_hh=ifoz(sd["weight_hh_l0"]),
            bias=ifoz(sd["bias_ih_l0"] + sd["bias_hh_l0"]),
            weight_ih_back=ifoz(sd["weight_ih_l0_reverse"]),
            weight_hh_back=ifoz(sd["weight_hh_l0_reverse"]),
            bias_back=ifoz(sd["bias_ih_l0_reverse"] + sd["bias_hh_l0_reverse"]),
            direction="bidirectional",
            output_sequence=output_sequence,
        )

    got = list(Emulator(_convert_program(prog, ct.target.iOS15)).run({"x": x.numpy()}).values())
    want_y = (
        y.numpy()
        if output_sequence
        else np.concatenate([y[-1:, :, :4].numpy(), y[:1, :, 4:].numpy()], -1)
    )
    want = [want_y, np.concatenate([hn[0], hn[1]], -1), np.concatenate([cn[0], cn[1]], -1)]
    for g, w_ in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w_, rtol=1e-5, atol=1e-6)


def _torch_gru_weights(ref: nn.GRU) -> dict[str, np.ndarray]:
    """torch's [r, z, n] blocks rearranged to MIL's [r, o, z]."""
    sd = {k: v.detach().numpy() for k, v in ref.state_dict().items()}

    def roz(a: np.ndarray) -> np.ndarray:
        r, z, n = np.split(a, 3)
        return np.concatenate([r, n, z])

    return {k: roz(v) for k, v in sd.items()}


def test_gru_op_reset_after_matches_torch() -> None:
    """iOS18 gru(reset_after=True, input_bias=b_i*, bias=b_h*) is torch's GRU formula."""
    torch.manual_seed(8)
    ref = nn.GRU(3, 4)
    w = _torch_gru_weights(ref)
    x, h0 = _randn(5, 2, 3, seed=9), _randn(1, 2, 4, seed=10)
    with torch.no_grad():
        y, hn = ref(x, h0)

    @mb.program(input_specs=[mb.TensorSpec(shape=(5, 2, 3))], opset_version=ct.target.iOS18)
    def prog(x):  # type: ignore[no-untyped-def]
        return mb.gru(
            x=x,
            initial_h=h0[0].numpy(),
            weight_ih=w["weight_ih_l0"],
            weight_hh=w["weight_hh_l0"],
            input_bias=w["bias_ih_l0"],
            bias=w["bias_hh_l0"],
            reset_after=True,
            output_sequence=True,
        )

    got = _run_program(prog, {"x": x.numpy()})
    got_y, got_h = got.values()
    np.testing.assert_allclose(got_y, y.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got_h, hn[0].numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("direction", ["forward", "reverse"])
def test_gru_op_reset_before(direction: str) -> None:
    """iOS15 gru: candidate = act(W_o x + R_o (r * h) + b_o); reverse emits processing order."""
    rng = np.random.default_rng(11)
    seq, batch, inp, hid = 4, 3, 2, 5
    w_ih = rng.uniform(-1, 1, (3 * hid, inp)).astype(np.float32)
    w_hh = rng.uniform(-1, 1, (3 * hid, hid)).astype(np.float32)
    b = rng.uniform(-1, 1, 3 * hid).astype(np.float32)
    x = rng.uniform(0, 1, (seq, batch, inp)).astype(np.float32)
    h0 = rng.uniform(0, 1, (batch, hid)).astype(np.float32)

    @mb.program(input_specs=[mb.TensorSpec(shape=x.shape)], opset_version=ct.target.iOS15)
    def prog(x):  # type: ignore[no-untyped-def]
        return mb.gru(
            x=x,
            initial_h=h0,
            weight_ih=w_ih,
            weight_hh=w_hh,
            bias=b,
            direction=direction,
            output_sequence=True,
            recurrent_activation="sigmoid",
            activation="tanh",
        )

    got_y, got_h = Emulator(_convert_program(prog, ct.target.iOS15)).run({"x": x}).values()
    (wr, wo, wz), (rr, ro, rz), (br, bo, bz) = (
        np.split(a.astype(np.float64), 3) for a in (w_ih, w_hh, b)
    )
    h = h0.astype(np.float64)
    ys = []
    for t in range(seq) if direction == "forward" else range(seq - 1, -1, -1):
        z = _sigmoid(wz @ x[t].T + rz @ h.T + bz[:, None]).T
        r = _sigmoid(wr @ x[t].T + rr @ h.T + br[:, None]).T
        o = np.tanh(wo @ x[t].T + ro @ (h * r).T + bo[:, None]).T
        h = (1 - z) * o + z * h
        ys.append(h)
    np.testing.assert_allclose(got_y, np.stack(ys), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got_h, h, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("direction", ["forward", "reverse"])
@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_rnn_op_matches_torch(direction: str, activation: str) -> None:
    torch.manual_seed(12)
    ref = nn.RNN(3, 4, nonlinearity=activation)
    sd = {k: v.detach().numpy() for k, v in ref.state_dict().items()}
    x, h0 = _randn(5, 2, 3, seed=13), _randn(1, 2, 4, seed=14)
    with torch.no_grad():
        y, hn = ref(torch.flip(x, [0]) if direction == "reverse" else x, h0)

    @mb.program(input_specs=[mb.TensorSpec(shape=(5, 2, 3))], opset_version=ct.target.iOS15)
    def prog(x):  # type: ignore[no-untyped-def]
        return mb.rnn(
            x=x,
            initial_h=h0[0].numpy(),
            weight_ih=sd["weight_ih_l0"],
            weight_hh=sd["weight_hh_l0"],
            bias=sd["bias_ih_l0"] + sd["bias_hh_l0"],
            direction=direction,
            output_sequence=True,
            activation=activation,
        )

    got_y, got_h = Emulator(_convert_program(prog, ct.target.iOS15)).run({"x": x.numpy()}).values()
    np.testing.assert_allclose(got_y, y.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got_h, hn[0].numpy(), rtol=1e-5, atol=1e-6)


def test_lstm_fp16_outputs_overflow_only_at_the_outputs() -> None:
    """Inside the op the state is float32; a linear cell activation overflows only on output."""
    hid = 1

    @mb.program(
        input_specs=[mb.TensorSpec(shape=(3, 1, 1), dtype=types.fp16)],
        opset_version=ct.target.iOS17,
    )
    def prog(x):  # type: ignore[no-untyped-def]
        return mb.lstm(
            x=x,
            initial_h=np.zeros((1, hid), np.float16),
            initial_c=np.zeros((1, hid), np.float16),
            weight_ih=np.array([[0.0], [0.0], [0.0], [1.0]], np.float16),
            weight_hh=np.zeros((4, 1), np.float16),
            bias=np.array([30.0, 30.0, 30.0, 0.0], np.float16),  # gates saturate at 1
            cell_activation="linear",
            activation="linear",
            output_sequence=True,
        )

    x = np.array([[[40000.0]], [[40000.0]], [[-60000.0]]], np.float16)
    y, h, c = _run_program(prog, {"x": x}).values()
    # c: 40000, 80000 (inf in fp16), 20000; the last step is finite because
    # the state stayed float32 between steps.
    np.testing.assert_array_equal(y.reshape(-1), np.array([40000, np.inf, 20000], np.float16))
    assert h.item() == np.float16(20000) and c.item() == np.float16(20000)


# ============================================================ control-flow families


class DataDependentIf(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if bool(x.sum() > 0):
            return x * 2.0
        return x - 1.0


class DataDependentFor(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = int(torch.clamp(x.abs().sum(), max=6.0))
        y = x
        for _ in range(n):
            y = y * 0.5 + 1.0
        return y


class DataDependentWhile(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        i = 0
        while bool(y.abs().max() > 1.0) and i < 20:
            y = y * 0.5
            i += 1
        return y


CONTROL_CASES = {
    # two inputs per model so that both branches / several trip counts run
    "if": (DataDependentIf, [_randn(3, 4, seed=20) + 1.0, _randn(3, 4, seed=21) - 1.0]),
    "for": (DataDependentFor, [_randn(3, 4, seed=22, scale=0.1), _randn(3, 4, seed=23)]),
    "while": (
        DataDependentWhile,
        [_randn(3, 4, seed=24, scale=0.1), _randn(3, 4, seed=25, scale=40)],
    ),
}


# torch.clamp(max=...) converts to clip with a -inf bound that coremltools casts to
# fp16 with plain numpy astype, which warns; the converted value (-inf) is intended.
@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning:coremltools.*")
@pytest.mark.parametrize("case", list(CONTROL_CASES))
@grid
def test_control_flow_family(case: str, target: str, precision: str) -> None:
    model_cls, inputs = CONTROL_CASES[case]
    for x in inputs:
        support.assert_close_to_torch(
            model_cls(), [x], target=target, precision=precision, script=True
        )


def test_while_loop_trip_count_follows_the_data() -> None:
    """The loop runs until the data says stop (not a traced constant trip count)."""
    mlmodel = support.convert(DataDependentWhile(), [_randn(3, 4)], script=True)
    emulator = Emulator(mlmodel)
    for scale in (0.5, 3.0, 1000.0):
        x = np.full((3, 4), scale, np.float32)
        (got,) = emulator.run({"x0": x}).values()
        want = DataDependentWhile()(torch.from_numpy(x)).numpy()
        np.testing.assert_array_equal(got, want)


# ======================================================== control-flow kernel tests


def test_cond_multiple_outputs_and_zero_trip_while() -> None:
    @mb.program(input_specs=[mb.TensorSpec(shape=(2,))], opset_version=ct.target.iOS17)
    def prog(x):  # type: ignore[no-untyped-def]
        pred = mb.greater(x=mb.reduce_sum(x=x), y=0.0)
        a, b = mb.cond(
            pred=pred,
            _true_fn=lambda: (mb.mul(x=x, y=2.0), mb.add(x=x, y=1.0)),
            _false_fn=lambda: (mb.mul(x=x, y=-1.0), mb.add(x=x, y=-1.0)),
        )
        # condition false from the start: outputs are the initial loop vars
        c = mb.while_loop(
            _cond=lambda v: mb.less(x=mb.reduce_sum(x=v), y=-100.0),
            _body=lambda v: (mb.add(x=v, y=1.0),),
            loop_vars=(a,),
        )
        return a, b, mb.identity(x=c)

    emulator = Emulator(_convert_program(prog, ct.target.iOS17))
    x = np.array([1.0, 2.0], np.float32)
    a, b, c = emulator.run({"x": x}).values()
    np.testing.assert_array_equal(a, 2 * x)
    np.testing.assert_array_equal(b, x + 1)
    np.testing.assert_array_equal(c, 2 * x)
    a, b, _ = emulator.run({"x": -x}).values()
    np.testing.assert_array_equal(a, x)
    np.testing.assert_array_equal(b, -x - 1)


def test_lists_in_a_while_loop() -> None:
    """make_list/list_write/list_read/list_length/list_gather/list_scatter, as TF lowers them."""

    @mb.program(input_specs=[mb.TensorSpec(shape=(3,))], opset_version=ct.target.iOS15)
    def prog(x):  # type: ignore[no-untyped-def]
        ls = mb.make_list(init_length=1, dynamic_length=True, elem_shape=[3], dtype="fp32")

        def body(i, acc, ls):  # type: ignore[no-untyped-def]
            acc = mb.mul(x=acc, y=2.0)
            return mb.add(x=i, y=1), acc, mb.list_write(ls=ls, index=i, value=acc)

        _, _, ls = mb.while_loop(
            _cond=lambda i, acc, ls: mb.less(x=i, y=4),
            _body=body,
            loop_vars=(np.int32(0), x, ls),
        )
        ls = mb.list_scatter(
            ls=ls, indices=np.array([4, 0], np.int32), value=mb.stack(values=[x, x], axis=0)
        )
        return (
            mb.list_gather(ls=ls, indices=np.array([0, 1, 2, 3, 4], np.int32)),
            mb.list_read(ls=ls, index=3),
            mb.list_length(ls=ls),
        )

    x = np.array([1.0, -2.0, 0.5], np.float32)
    gathered, last, length = _run_program(prog, {"x": x}).values()
    np.testing.assert_array_equal(gathered, np.stack([x, 4 * x, 8 * x, 16 * x, x]))
    np.testing.assert_array_equal(last, 16 * x)
    assert length.shape == (1,)  # a rank-0 model output, shaped as Core ML returns it
    assert int(length[0]) == 5


def test_unwritten_list_elements_read_as_zeros() -> None:
    """coremltools' own list test pins it ("list is initially all 0"): elements never
    written, including the gap a write past the end opens, read as zeros."""

    @mb.program(input_specs=[mb.TensorSpec(shape=(3,))], opset_version=ct.target.iOS15)
    def prog(x):  # type: ignore[no-untyped-def]
        ls = mb.make_list(init_length=2, dynamic_length=True, elem_shape=[3], dtype="fp32")
        first = mb.list_read(ls=ls, index=1)
        ls = mb.list_write(ls=ls, index=0, value=x)
        ls = mb.list_write(ls=ls, index=4, value=x)
        return first, mb.list_gather(ls=ls, indices=np.array([4, 3, 0], np.int32))

    x = np.array([1.0, -2.0, 0.5], np.float32)
    first, gathered = _run_program(prog, {"x": x}).values()
    np.testing.assert_array_equal(first, np.zeros(3, np.float32))
    np.testing.assert_array_equal(gathered, np.stack([x, np.zeros(3, np.float32), x]))


def test_unwritten_element_of_unknown_shape_is_refused() -> None:
    from pytest_coreml_parity.emulator.kernels.control_flow import TensorList

    ls = TensorList((None,), np.dtype(np.float32), (None, 3), dynamic_length=True)
    with pytest.raises(ValueError, match=r"read before it was written.*not fully known"):
        ls.read(0)


# =============================================================== compressed weights


class CompressibleModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(4, 8, 3)
        self.linear = nn.Linear(8 * 4 * 4, 16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(torch.relu(self.conv(x)).flatten(1))


def _compress(mlmodel: Any, kind: str) -> Any:
    cto = ct.optimize.coreml
    q8 = cto.OpLinearQuantizerConfig(mode="linear_symmetric", weight_threshold=0)
    if kind == "int8":
        return cto.linear_quantize_weights(mlmodel, cto.OptimizationConfig(q8))
    if kind == "int4_per_block":
        cfg = cto.OpLinearQuantizerConfig(
            mode="linear_symmetric",
            dtype="int4",
            granularity="per_block",
            block_size=4,
            weight_threshold=0,
        )
        return cto.linear_quantize_weights(mlmodel, cto.OptimizationConfig(cfg))
    if kind in ("palettize4", "palettize4_kmeans"):
        mode = "kmeans" if kind.endswith("kmeans") else "uniform"
        cfg = cto.OpPalettizerConfig(nbits=4, mode=mode, weight_threshold=0)
        return cto.palettize_weights(mlmodel, cto.OptimizationConfig(cfg))
    if kind == "palettize4_grouped":
        cfg = cto.OpPalettizerConfig(
            nbits=4,
            mode="uniform",
            granularity="per_grouped_channel",
            group_size=4,
            weight_threshold=0,
        )
        return cto.palettize_weights(mlmodel, cto.OptimizationConfig(cfg))
    prune = cto.OpMagnitudePrunerConfig(target_sparsity=0.5, weight_threshold=0)
    pruned = cto.prune_weights(mlmodel, cto.OptimizationConfig(prune))
    if kind == "prune50":
        return pruned
    if kind == "prune50_int8":
        return cto.linear_quantize_weights(
            pruned, cto.OptimizationConfig(q8), joint_compression=True
        )
    if kind == "prune50_palettize4":
        cfg = cto.OpPalettizerConfig(nbits=4, mode="uniform", weight_threshold=0)
        return cto.palettize_weights(pruned, cto.OptimizationConfig(cfg), joint_compression=True)
    if kind == "palettize4_int8_lut":
        pal = cto.palettize_weights(
            mlmodel,
            cto.OptimizationConfig(
                cto.OpPalettizerConfig(nbits=4, mode="uniform", weight_threshold=0)
            ),
        )
        cfg = cto.OpLinearQuantizerConfig(
            mode="linear_symmetric", granularity="per_tensor", weight_threshold=0
        )
        return cto.linear_quantize_weights(pal, cto.OptimizationConfig(cfg), joint_compression=True)
    raise AssertionError(kind)


COMPRESSIONS = {
    "iOS16": ["int8", "palettize4", "palettize4_kmeans", "prune50"],
    "iOS18": [
        "int8",
        "int4_per_block",
        "palettize4",
        "palettize4_kmeans",
        "palettize4_grouped",
        "prune50",
        "prune50_int8",
        "prune50_palettize4",
        "palettize4_int8_lut",
    ],
}
EXPECTED_OPS = {
    ("iOS16", "int8"): {"constexpr_affine_dequantize"},
    ("iOS16", "palettize4"): {"constexpr_lut_to_dense"},
    ("iOS16", "palettize4_kmeans"): {"constexpr_lut_to_dense"},
    ("iOS16", "prune50"): {"constexpr_sparse_to_dense"},
    ("iOS18", "int8"): {"constexpr_blockwise_shift_scale"},
    ("iOS18", "int4_per_block"): {"constexpr_blockwise_shift_scale"},
    ("iOS18", "palettize4"): {"constexpr_lut_to_dense"},
    ("iOS18", "palettize4_kmeans"): {"constexpr_lut_to_dense"},
    ("iOS18", "palettize4_grouped"): {"constexpr_lut_to_dense"},
    ("iOS18", "prune50"): {"constexpr_sparse_to_dense"},
    ("iOS18", "prune50_int8"): {
        "constexpr_sparse_blockwise_shift_scale",
        "constexpr_sparse_to_dense",
    },
    ("iOS18", "prune50_palettize4"): {"constexpr_lut_to_sparse", "constexpr_sparse_to_dense"},
    ("iOS18", "palettize4_int8_lut"): {"constexpr_blockwise_shift_scale", "constexpr_lut_to_dense"},
}


# ---- independent numpy decompression of the stored parameters ----------------


def _bits(packed: np.ndarray, nbits: int, count: int) -> np.ndarray:
    """Unpack LSB-first bit fields with plain integer arithmetic."""
    big = int.from_bytes(np.asarray(packed, np.uint8).tobytes(), "little")
    mask = (1 << nbits) - 1
    return np.array([(big >> (k * nbits)) & mask for k in range(count)], np.int64)


def _expand(param: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    for axis, (dim, n) in enumerate(zip(shape, param.shape, strict=True)):
        param = np.repeat(param, dim // n, axis=axis)
    return param


def _reference(var: Any) -> np.ndarray:
    """Decompress ``var`` (a const or a constexpr output) in float64 / int64."""
    op = var.op
    if op is None or op.op_type == "const":
        val = np.asarray(var.val)
        return val.astype(np.float64) if val.dtype.kind == "f" else val.astype(np.int64)
    kind = op.op_type
    if kind == "constexpr_sparse_to_dense":
        return _reference_sparse_to_dense(op)
    ins = {k: _reference(v) for k, v in op.inputs.items() if k not in ("axis", "vector_axis")}
    if kind == "constexpr_affine_dequantize":
        q = ins["quantized_data"]
        shape = [1] * q.ndim
        shape[int(op.inputs["axis"].val)] = -1
        return ins["scale"].reshape(shape if ins["scale"].ndim else ()) * (
            q - ins["zero_point"].reshape(shape if ins["zero_point"].ndim else ())
        )
    if kind == "constexpr_blockwise_shift_scale":
        data = ins["data"].astype(np.float64)
        if "offset" in ins:
            data = data - _expand(ins["offset"], data.shape)
        return _expand(ins["scale"], data.shape) * data
    if kind == "constexpr_lut_to_dense" and "shape" in ins:
        lut, shape = ins["lut"], tuple(int(d) for d in ins["shape"])
        keys = _bits(ins["indices"], int(np.log2(lut.size)), int(np.prod(shape)))
        return lut[keys].reshape(shape)
    if kind == "constexpr_lut_to_dense":
        idx, lut = ins["indices"], ins["lut"]
        assert lut.shape[-1] == 1, "vector palettization is not expected from these configs"
        out = np.empty(idx.shape, lut.dtype)
        for pos in np.ndindex(*idx.shape):
            group = tuple(p * g // d for p, g, d in zip(pos, lut.shape, idx.shape, strict=False))
            out[pos] = lut[(*group, idx[pos], 0)]
        return out
    raise AssertionError(f"no reference for {kind}")


def _reference_sparse_to_dense(op: Any) -> np.ndarray:
    mask_var = op.inputs["mask"]
    producer = mask_var.op
    if producer is not None and producer.op_type in _TWO_OUTPUT_SPARSE:
        # scalar (non-vector) luts and shift-scale pass their input mask through
        mask_var = producer.inputs.get("data_mask", producer.inputs.get("indices_mask"))
    mask = _reference(mask_var)
    if "shape" in op.inputs:
        shape = tuple(int(d) for d in op.inputs["shape"].val)
        mask = _bits(mask, 1, int(np.prod(shape))).reshape(shape)
    nonzero = _reference_output(op.inputs["nonzero_data"])
    out = np.zeros(mask.shape, nonzero.dtype)
    out[mask.astype(bool)] = nonzero
    return out


_TWO_OUTPUT_SPARSE = ("constexpr_sparse_blockwise_shift_scale", "constexpr_lut_to_sparse")


def _reference_output(var: Any) -> np.ndarray:
    """Like _reference, but picks the nonzero-data output of a two-output sparse op."""
    op = var.op
    if op is not None and op.op_type in _TWO_OUTPUT_SPARSE:
        assert var is op.outputs[1]
        ins = {k: _reference(v) for k, v in op.inputs.items() if k != "vector_axis"}
        mask = (ins.get("data_mask", ins.get("indices_mask"))).astype(bool)
        if op.op_type == "constexpr_lut_to_sparse":
            lut = ins["lut"]
            assert lut.shape[-1] == 1
            keys = np.zeros(mask.shape, np.int64)
            keys[mask] = ins["indices_nonzero_data"]
            dense = np.empty(mask.shape, lut.dtype)
            for pos in np.ndindex(*mask.shape):
                group = tuple(
                    p * g // d for p, g, d in zip(pos, lut.shape, mask.shape, strict=False)
                )
                dense[pos] = lut[(*group, keys[pos], 0)]
            return dense[mask]
        data = np.zeros(mask.shape)
        data[mask] = ins["nonzero_data"]
        if "offset" in ins:
            data = data - _expand(ins["offset"], mask.shape)
        return (_expand(ins["scale"], mask.shape) * data)[mask]
    return _reference(var)


def _weights(mlmodel: Any) -> dict[str, tuple[Any, np.ndarray]]:
    """For each conv/linear of the *loaded* program: (weight var, numpy-decompressed weight)."""
    from pytest_coreml_parity.emulator.program import load_program

    function = load_program(mlmodel).function
    found = {}
    for op in function.operations:
        if op.op_type in ("conv", "linear"):
            var = op.inputs["weight"]
            found[op.op_type] = (var, _reference(var))
    return found


def _compression_bound(
    model: CompressibleModel, x: torch.Tensor, w_conv: np.ndarray, w_lin: np.ndarray
) -> np.ndarray:
    """A rigorous per-element bound on |f_compressed(x) - f(x)| from the weight errors.

    conv: |dh| <= conv(|x|, |dWc|) (bias is not compressed); relu is 1-Lipschitz;
    linear: |dy| = |Wq dh + dW h| <= |Wq| |dh| + |dW| |h|.
    """
    with torch.no_grad():
        d_conv = torch.from_numpy(np.abs(w_conv - model.conv.weight.double().numpy()))
        dh = torch.nn.functional.conv2d(x.double().abs(), d_conv).flatten(1)
        h = torch.relu(model.conv(x)).flatten(1).double()
        wq = torch.from_numpy(w_lin)
        dw = (wq - model.linear.weight.double()).abs()
        return (dh @ wq.abs().T + h.abs() @ dw.T).numpy()


@pytest.mark.parametrize(
    ("target", "kind"), [(t, k) for t, kinds in COMPRESSIONS.items() for k in kinds]
)
@pytest.mark.parametrize("precision", PRECISIONS)
def test_compressed_weights_family(target: str, kind: str, precision: str) -> None:
    if kind.endswith("kmeans"):
        pytest.importorskip("sklearn", reason="k-means palettization needs scikit-learn")
    model = CompressibleModel().eval()
    x = _randn(2, 4, 6, 6, seed=30)
    mlmodel = _compress(support.convert(model, [x], target=target, precision=precision), kind)
    emulator = Emulator(mlmodel)
    op_types = {op.op_type for op in emulator.ops}
    assert EXPECTED_OPS[(target, kind)] <= op_types, op_types

    # 1. The emulator's decompressed weights equal the numpy reference, exactly
    #    once rounded to the declared dtype (one rounding of the exact value).
    recording = emulator.record({"x0": x.numpy()})
    weights = _weights(mlmodel)
    assert set(weights) == {"conv", "linear"}
    for var, want in weights.values():
        got = recording.values[var.name]
        np.testing.assert_array_equal(got, want.astype(got.dtype), err_msg=var.name)

    # 2. The model output vs torch with exactly these weights: the usual tolerance.
    w_conv, w_lin = weights["conv"][1], weights["linear"][1]
    substituted = CompressibleModel().eval()
    with torch.no_grad():
        substituted.conv.weight.copy_(torch.from_numpy(w_conv))
        substituted.linear.weight.copy_(torch.from_numpy(w_lin))
        want_sub = substituted(x).numpy()
    (got,) = recording.outputs.values()
    rtol, atol = support.TOLERANCES[precision]
    scale = max(1.0, float(np.abs(want_sub).max())) if precision == "fp16" else 1.0
    np.testing.assert_allclose(got.astype(np.float64), want_sub, rtol=rtol, atol=atol * scale)

    # 3. The model output vs the uncompressed torch model, within the bound the
    #    actual weight errors imply, plus the same floating-point tolerance.
    with torch.no_grad():
        want = model(x).numpy()
    bound = _compression_bound(model, x, w_conv, w_lin)
    excess = np.abs(got.astype(np.float64) - want) - bound
    fp_tol = atol * scale + rtol * np.abs(want)
    assert np.all(excess <= fp_tol), f"worst excess over the bound {excess.max():.3g}"


# ------------------------------------------------------ constexpr kernel tests


def _emulate_constexpr(build: Any, target: Any, x_shape: tuple[int, ...]) -> np.ndarray:
    """Run a program returning ``x + <constexpr weight>``, fed with zeros."""

    @mb.program(input_specs=[mb.TensorSpec(shape=x_shape)], opset_version=target)
    def prog(x):  # type: ignore[no-untyped-def]
        return mb.add(x=x, y=build())

    mlmodel = ct.convert(
        prog,
        convert_to="mlprogram",
        minimum_deployment_target=target,
        compute_precision=ct.precision.FLOAT32,
    )
    (out,) = Emulator(mlmodel).run({"x": np.zeros(x_shape, np.float32)}).values()
    return out


@pytest.mark.parametrize("nbits", [1, 2, 4, 6, 8])
def test_iOS16_lut_to_dense_bit_packing(nbits: int) -> None:
    rng = np.random.default_rng(nbits)
    shape = (3, 7)  # 21 elements: the last byte is partially used for most widths
    keys = rng.integers(0, 2**nbits, shape)
    lut = rng.standard_normal(2**nbits).astype(np.float32)
    packed = np.packbits(
        ((keys.reshape(-1, 1) >> np.arange(nbits)) & 1).astype(np.uint8).reshape(-1),
        bitorder="little",
    )
    got = _emulate_constexpr(
        lambda: mb.constexpr_lut_to_dense(
            indices=packed, lut=lut, shape=np.array(shape, np.uint32)
        ),
        ct.target.iOS16,
        shape,
    )
    np.testing.assert_array_equal(got, lut[keys])


def test_iOS16_affine_dequantize_scalar_and_uint8() -> None:
    q = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    got = _emulate_constexpr(
        lambda: mb.constexpr_affine_dequantize(
            quantized_data=q, zero_point=np.uint8(128), scale=np.float32(0.5), axis=0
        ),
        ct.target.iOS16,
        (3, 4),
    )
    np.testing.assert_array_equal(got, 0.5 * (q.astype(np.float32) - 128))


def test_iOS16_sparse_to_dense_and_cast() -> None:
    mask_bits = np.array([1, 0, 0, 1, 1, 0, 1, 0, 0, 1], np.uint8)
    values = np.array([1.5, -2.0, 3.0, 4.0, -5.5], np.float16)
    dense = np.zeros(10, np.float32)
    dense[mask_bits == 1] = values
    got = _emulate_constexpr(
        lambda: mb.constexpr_sparse_to_dense(
            nonzero_data=values.astype(np.float32),
            mask=np.packbits(mask_bits, bitorder="little"),
            shape=np.array([2, 5], np.uint32),
        ),
        ct.target.iOS16,
        (2, 5),
    )
    np.testing.assert_array_equal(got, dense.reshape(2, 5))
    got = _emulate_constexpr(
        lambda: mb.constexpr_cast(source_val=values, output_dtype="fp32"), ct.target.iOS16, (5,)
    )
    np.testing.assert_array_equal(got, values.astype(np.float32))


def test_iOS18_vector_palettization_and_lut_to_sparse() -> None:
    """Docstring examples of constexpr_lut_to_dense (cases 2.1/2.2) and lut_to_sparse."""
    indices = np.array([[[0, 0], [1, 0]], [[1, 1], [0, 0]]], np.uint8)
    a, b = [1.0, 2.0, 3.0], [10.0, 20.0, 30.0]
    lut = np.array([a, b], np.float32).reshape(1, 1, 1, 2, 3)
    vecs = np.array([a, b], np.float32)[indices]  # (2, 2, 2, 3)
    for vector_axis, want in (
        (1, np.moveaxis(vecs, 3, 2).reshape(2, 6, 2)),
        (2, vecs.reshape(2, 2, 6)),
    ):
        got = _emulate_constexpr(
            lambda vector_axis=vector_axis: mb.constexpr_lut_to_dense(
                indices=indices.astype(types.np_uint1_dtype), lut=lut, vector_axis=vector_axis
            ),
            ct.target.iOS18,
            want.shape,
        )
        np.testing.assert_array_equal(got, want)

    # lut_to_sparse with a vector lut widens the mask along vector_axis (docstring example).
    mask = np.array(
        [[1, 1, 0, 0, 0, 0], [1, 1, 0, 0, 0, 1], [0, 1, 1, 0, 1, 0], [0, 0, 0, 1, 0, 0]], np.uint8
    )
    keys = np.array([0, 1, 1, 0, 1, 1, 0, 0, 1], np.uint8)
    vec_lut = np.array([[2.0, 2.5], [3.0, 3.5]], np.float32).reshape(1, 1, 2, 2)

    def build():  # type: ignore[no-untyped-def]
        m, v = mb.constexpr_lut_to_sparse(
            indices_mask=mask.astype(types.np_uint1_dtype),
            indices_nonzero_data=keys.astype(types.np_uint1_dtype),
            lut=vec_lut,
            vector_axis=0,
        )
        return mb.constexpr_sparse_to_dense(nonzero_data=v, mask=m)

    got = _emulate_constexpr(build, ct.target.iOS18, (8, 6))
    dense_keys = np.zeros(mask.shape, np.int64)
    dense_keys[mask == 1] = keys
    want = np.zeros((8, 6), np.float32)
    for (r, col), key in np.ndenumerate(dense_keys):
        if mask[r, col]:
            want[2 * r : 2 * r + 2, col] = vec_lut[0, 0, key]
    np.testing.assert_array_equal(got, want)


def test_iOS18_sparse_blockwise_shift_scale_docstring_example() -> None:
    mask = np.array([[1, 1, 0, 0], [1, 1, 1, 0], [0, 0, 1, 1], [1, 1, 0, 0]], np.uint8)
    nonzero = np.array([10, 11, 3, 4, 5, 6, 7, 8, 9], np.int8)
    scale = np.array([[0.1, 0.2, 0.3, 0.4]], np.float32)
    offset = np.array([[1, 2, 3, 4]], np.int8)

    def build():  # type: ignore[no-untyped-def]
        m, v = mb.constexpr_sparse_blockwise_shift_scale(
            data_mask=mask.astype(types.np_uint1_dtype),
            nonzero_data=nonzero,
            scale=scale,
            offset=offset,
        )
        return mb.constexpr_sparse_to_dense(nonzero_data=v, mask=m)

    got = _emulate_constexpr(build, ct.target.iOS18, (4, 4))
    dense = np.zeros((4, 4), np.float32)
    dense[mask == 1] = nonzero
    want = np.where(mask == 1, scale * (dense - offset), 0.0).astype(np.float32)
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_iOS18_blockwise_int4_with_offset() -> None:
    rng = np.random.default_rng(40)
    data = rng.integers(-8, 8, (4, 6)).astype(np.int8)
    scale = rng.uniform(0.1, 1.0, (2, 3)).astype(np.float32)
    offset = rng.integers(-8, 8, (2, 3)).astype(np.int8)
    got = _emulate_constexpr(
        lambda: mb.constexpr_blockwise_shift_scale(
            data=data.astype(types.np_int4_dtype),
            scale=scale,
            offset=offset.astype(types.np_int4_dtype),
        ),
        ct.target.iOS18,
        (4, 6),
    )
    want = np.repeat(np.repeat(scale, 2, 0), 2, 1) * (
        data - np.repeat(np.repeat(offset, 2, 0), 2, 1)
    )
    np.testing.assert_allclose(got, want, rtol=1e-6)


@pytest.mark.parametrize("reverse", [False, True])
def test_lstm_torch_fused_path_matches_numpy_steps(reverse: bool) -> None:
    """The plain lstm runs torch's fused LSTM; the step-by-step numpy path (peepholes,
    clip, other activations) must agree with it to float32 rounding."""
    from pytest_coreml_parity.emulator.kernels import recurrent
    from pytest_coreml_parity.emulator.kernels._torch import torch_or_none

    rng = np.random.default_rng(11)
    seq, batch, inp, hid = 7, 3, 5, 4
    x = rng.standard_normal((seq, batch, inp)).astype(np.float32)
    h, c = (rng.standard_normal((batch, hid)).astype(np.float32) for _ in range(2))
    w_ih = rng.standard_normal((4 * hid, inp)).astype(np.float32)
    w_hh = rng.standard_normal((4 * hid, hid)).astype(np.float32)
    bias = rng.standard_normal(4 * hid).astype(np.float32)
    order = range(seq - 1, -1, -1) if reverse else range(seq)
    fast = recurrent._torch_lstm_direction(torch_or_none(), x, h, c, w_ih, w_hh, bias, order)
    slow = recurrent._numpy_lstm_direction(
        x, h, c, w_ih, w_hh, bias, np.zeros(3 * hid, np.float32), order, recurrent._TORCH_LSTM_ACTS, None
    )
    for got, want in zip(fast, slow, strict=True):
        assert got.dtype == np.float32 and got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
