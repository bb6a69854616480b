"""Recurrent layers (MIL spec section ``recurrent``): ``lstm``, ``gru``, ``rnn``.

The three share one step loop (:func:`_steps`): the input projection of every time
step is one matrix product up front (:func:`_project`), and each layer supplies only
its cell, the update of its state from one step's projection. Gates and states are
computed in float32 for the whole sequence; the runner rounds only the op's outputs
to the declared dtype. Core ML's internal state
precision for fp16 recurrent ops is not documented, so keeping the state in
float32 between steps is our stated model, not a claim about any device.

Layout conventions follow coremltools' own op tests (which pass on device):

* ``x`` is ``(seq, batch, input)``; weights are ``(G*H, in)`` with gate blocks
  ``[i, f, o, z]`` for lstm and ``[r, o, z]`` (reset, candidate, update) for gru.
* A single ``reverse`` direction emits its sequence in processing order (the
  first output row is the state after reading the last input), while
  ``bidirectional`` lstm aligns the backward half with input time, as torch
  does; its last-step output is ``[forward final, backward final]``.
* lstm ``clip`` clips the cell state after each update (the state used for the
  output gate's peephole and for ``h``), as coremltools' reference does.
* An initial state whose batch differs from ``x``'s is accepted only when all its
  rows are equal (then reading any ``batch`` of them gives one answer): coremltools'
  torch frontend builds such a state for packed sequences, zeros of batch
  ``lengths[0]`` (``TestLSTMWithPackedSequence``). Distinct rows raise
  :class:`~..errors.UnspecifiedResultError`: which rows the device reads is not
  documented.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..errors import UnspecifiedResultError
from ..registry import OpContext, kernel
from ._common import f32
from ._torch import tensor, torch_or_none

Activation = Callable[[np.ndarray], np.ndarray]


def _sigmoid(x: np.ndarray) -> np.ndarray:
    # exp of a non-positive argument never overflows.
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e)).astype(np.float32)


def _hard_sigmoid(x: np.ndarray) -> np.ndarray:
    # The spec's defaults alpha=0.2, beta=0.5 (as in coremltools' reference).
    return np.clip(np.float32(0.2) * x + np.float32(0.5), 0.0, 1.0).astype(np.float32)


_ACTIVATIONS: dict[str, Activation] = {
    "sigmoid": _sigmoid,
    "tanh": np.tanh,
    # alpha = beta = 1 by default, which makes it plain tanh.
    "scaled_tanh": np.tanh,
    "hard_sigmoid": _hard_sigmoid,
    "relu": lambda x: np.maximum(x, np.float32(0)),
    "linear": lambda x: x,
}


def _activation(name: str) -> Activation:
    fn = _ACTIVATIONS.get(str(name).lower())
    if fn is None:
        raise NotImplementedError(
            f"activation {name!r} is not supported; expected one of {sorted(_ACTIVATIONS)}"
        )
    return fn


def _check_rank3(x: np.ndarray) -> None:
    if x.ndim != 3:
        raise ValueError(f"x must have rank 3 (seq, batch, input), got shape {x.shape}")


def _time_order(seq: int, direction: str) -> range:
    if direction == "forward":
        return range(seq)
    if direction == "reverse":
        return range(seq - 1, -1, -1)
    raise NotImplementedError(f"direction {direction!r} is not supported")


def _initial_state(state: Any, batch: int, width: int, name: str) -> np.ndarray:
    """``state`` as ``(batch, width)`` float32; see the module docstring for a batch mismatch."""
    value = f32(state)
    if value.ndim != 2 or value.shape[1] != width:
        raise ValueError(f"{name} must have shape ({batch}, {width}), got {value.shape}")
    if value.shape[0] == batch:
        return value
    if value.shape[0] >= 1 and bool(np.all(value == value[:1])):
        return np.ascontiguousarray(np.broadcast_to(value[:1], (batch, width)))
    raise UnspecifiedResultError(
        f"{name} has batch {value.shape[0]} but x has batch {batch}, and its rows differ: "
        "Core ML does not document which rows it reads"
    )


def _bias(bias: Any, size: int) -> np.ndarray:
    return np.zeros(size, np.float32) if bias is None else f32(bias).reshape(size)


# ------------------------------------------------------------ the step loop

#: A layer's recurrent state, ``h`` first (the output of each step), then any more (lstm's ``c``).
State = tuple[np.ndarray, ...]
#: One time step: (this step's input projection ``(batch, G*H)``, state) -> the new state.
Cell = Callable[[np.ndarray, State], State]


def _project(x: np.ndarray, w_ih: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """``x @ w_ih.T + bias`` for every time step at once: one matrix product over the
    ``seq * batch`` rows (the recurrence only needs the hidden state's product per step)."""
    seq, batch, width = x.shape
    proj: np.ndarray = np.matmul(x.reshape(seq * batch, width), w_ih.T)
    proj += bias
    return proj.reshape(seq, batch, w_ih.shape[0])


def _steps(x_proj: np.ndarray, state: State, order: range, cell: Cell) -> tuple[np.ndarray, State]:
    """Run ``cell`` over the time steps in ``order``: the ``h`` of each step, in processing
    order ``(seq, batch, H)``, and the final state."""
    seq, batch = x_proj.shape[:2]
    outputs = np.empty((seq, batch, state[0].shape[-1]), np.float32)
    for k, t in enumerate(order):
        state = cell(x_proj[t], state)
        outputs[k] = state[0]
    return outputs, state


# ----------------------------------------------------------------------- lstm


def _lstm_direction(
    x: np.ndarray,
    h: np.ndarray,
    c: np.ndarray,
    w_ih: np.ndarray,
    w_hh: np.ndarray,
    bias: np.ndarray,
    peephole: np.ndarray,
    order: range,
    acts: tuple[Activation, Activation, Activation],
    clip: float | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Run one direction; returns outputs (seq, b, H) in processing order, h, c."""
    torch = torch_or_none()
    if (
        torch is not None
        and acts == _TORCH_LSTM_ACTS
        and clip is None
        and not peephole.any()
        and x.shape[0] > 0
    ):
        return _torch_lstm_direction(torch, x, h, c, w_ih, w_hh, bias, order)
    return _numpy_lstm_direction(x, h, c, w_ih, w_hh, bias, peephole, order, acts, clip)


def _torch_lstm_direction(
    torch: Any,
    x: np.ndarray,
    h: np.ndarray,
    c: np.ndarray,
    w_ih: np.ndarray,
    w_hh: np.ndarray,
    bias: np.ndarray,
    order: range,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The plain lstm (sigmoid/tanh/tanh, no peephole, no clip) through torch's fused
    float32 LSTM: the same gate formulas, the state in float32 between steps."""

    def ifzo(a: np.ndarray) -> np.ndarray:  # MIL's [i, f, o, z] blocks in torch's [i, f, z, o]
        i, f, o, z = np.split(a, 4)
        return np.ascontiguousarray(np.concatenate([i, f, z, o]))

    reverse = order.step < 0
    xs = np.ascontiguousarray(x[::-1]) if reverse else x
    params = [tensor(torch, ifzo(w)) for w in (w_ih, w_hh)]
    params += [tensor(torch, ifzo(bias)), torch.zeros(bias.shape[0], dtype=torch.float32)]
    hx = (tensor(torch, h)[None], tensor(torch, c)[None])
    with torch.no_grad():
        ys, hn, cn = torch._VF.lstm(tensor(torch, xs), hx, params, True, 1, 0.0, False, False, False)
    return ys.numpy(), hn[0].numpy(), cn[0].numpy()


#: The activations torch's fused LSTM computes (recurrent, cell, output).
_TORCH_LSTM_ACTS = (_sigmoid, np.tanh, np.tanh)


def _numpy_lstm_direction(
    x: np.ndarray,
    h: np.ndarray,
    c: np.ndarray,
    w_ih: np.ndarray,
    w_hh: np.ndarray,
    bias: np.ndarray,
    peephole: np.ndarray,
    order: range,
    acts: tuple[Activation, Activation, Activation],
    clip: float | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One direction step by step in numpy: any activations, peepholes and clip."""
    outputs, (h, c) = _steps(
        _project(x, w_ih, bias), (h, c), order, _lstm_cell(w_hh, peephole, acts, clip)
    )
    return outputs, h, c


def _lstm_cell(
    w_hh: np.ndarray,
    peephole: np.ndarray,
    acts: tuple[Activation, Activation, Activation],
    clip: float | None,
) -> Cell:
    """lstm's step: gates ``[i, f, o, z]``, peepholes on ``c``, ``c`` clipped after its update."""
    rec, cell, out = acts
    w_t = np.ascontiguousarray(w_hh.T)
    p_i, p_f, p_o = np.split(peephole, 3)

    def step(x_t: np.ndarray, state: State) -> State:
        h, c = state
        gates = x_t + h @ w_t
        g_i, g_f, g_o, g_z = np.split(gates, 4, axis=-1)
        i = rec(g_i + p_i * c)
        f = rec(g_f + p_f * c)
        z = cell(g_z)
        c = f * c + i * z
        if clip is not None:
            c = np.clip(c, -clip, clip)
        o = rec(g_o + p_o * c)
        return (o * out(c)).astype(np.float32), c.astype(np.float32)

    return step


@kernel("lstm")
def lstm(
    ctx: OpContext,
    x: np.ndarray,
    initial_h: np.ndarray,
    initial_c: np.ndarray,
    weight_ih: np.ndarray,
    weight_hh: np.ndarray,
    bias: np.ndarray | None = None,
    peephole: np.ndarray | None = None,
    weight_ih_back: np.ndarray | None = None,
    weight_hh_back: np.ndarray | None = None,
    bias_back: np.ndarray | None = None,
    peephole_back: np.ndarray | None = None,
    direction: str = "forward",
    output_sequence: Any = False,
    recurrent_activation: str = "sigmoid",
    cell_activation: str = "tanh",
    activation: str = "tanh",
    clip: Any = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x = f32(x)
    _check_rank3(x)
    hidden = int(np.shape(weight_hh)[1])
    acts = (
        _activation(recurrent_activation),
        _activation(cell_activation),
        _activation(activation),
    )
    clip_value = None if clip is None else float(clip)
    width = 2 * hidden if direction == "bidirectional" else hidden
    h0 = _initial_state(initial_h, x.shape[1], width, "initial_h")
    c0 = _initial_state(initial_c, x.shape[1], width, "initial_c")
    seq = x.shape[0]

    def run(
        w_ih: Any, w_hh: Any, b: Any, p: Any, h: np.ndarray, c: np.ndarray, order: range
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return _lstm_direction(
            x,
            h,
            c,
            f32(w_ih),
            f32(w_hh),
            _bias(b, 4 * hidden),
            _bias(p, 3 * hidden),
            order,
            acts,
            clip_value,
        )

    if direction == "bidirectional":
        if weight_ih_back is None or weight_hh_back is None:
            raise ValueError("bidirectional lstm needs weight_ih_back and weight_hh_back")
        fwd, h_f, c_f = run(
            weight_ih, weight_hh, bias, peephole, h0[:, :hidden], c0[:, :hidden], range(seq)
        )
        bwd, h_b, c_b = run(
            weight_ih_back,
            weight_hh_back,
            bias_back,
            peephole_back,
            h0[:, hidden:],
            c0[:, hidden:],
            range(seq - 1, -1, -1),
        )
        bwd = bwd[::-1]  # back to input time order
        if bool(output_sequence):
            y = np.concatenate([fwd, bwd], axis=-1)
        else:
            y = np.concatenate([fwd[-1:], bwd[:1]], axis=-1)
        return y, np.concatenate([h_f, h_b], -1), np.concatenate([c_f, c_b], -1)

    ys, h, c = run(weight_ih, weight_hh, bias, peephole, h0, c0, _time_order(seq, direction))
    return (ys if bool(output_sequence) else ys[-1:]), h, c


# ------------------------------------------------------------------------ gru


@kernel("gru")
def gru(
    ctx: OpContext,
    x: np.ndarray,
    initial_h: np.ndarray,
    weight_ih: np.ndarray,
    weight_hh: np.ndarray,
    bias: np.ndarray | None = None,
    direction: str = "forward",
    output_sequence: Any = False,
    recurrent_activation: str = "sigmoid",
    activation: str = "tanh",
    reset_after: Any = False,
    input_bias: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """iOS15 gru resets h before the recurrent product; iOS18 ``reset_after`` after it.

    With ``reset_after`` the candidate is ``act(W_io x + b_io + r * (W_ho h + b_ho))``
    (torch's formula), where ``input_bias`` is ``b_i*`` and ``bias`` is ``b_h*``.
    """
    x = f32(x)
    _check_rank3(x)
    hidden = int(np.shape(weight_hh)[1])
    rec, act = _activation(recurrent_activation), _activation(activation)
    x_proj = _project(x, f32(weight_ih), _bias(input_bias, 3 * hidden))
    h = _initial_state(initial_h, x.shape[1], hidden, "initial_h")
    cell = _gru_cell(f32(weight_hh), _bias(bias, 3 * hidden), rec, act, bool(reset_after))
    outputs, (h,) = _steps(x_proj, (h,), _time_order(x.shape[0], direction), cell)
    return (outputs if bool(output_sequence) else outputs[-1:]), h


def _gru_cell(
    w_hh: np.ndarray, b_h: np.ndarray, rec: Activation, act: Activation, reset_after: bool
) -> Cell:
    """gru's step: gates ``[r, o, z]``; the reset gate scales ``h`` before the recurrent
    product (iOS15) or the product itself (``reset_after``, iOS18 and torch)."""
    hidden = w_hh.shape[1]
    b_hr, b_ho, b_hz = np.split(b_h, 3)
    w_hr, w_ho, w_hz = (np.ascontiguousarray(w.T) for w in np.split(w_hh, 3))
    # h's products for r and z (and o, when the reset comes after it) in one matmul.
    w_rz = np.ascontiguousarray(np.concatenate([w_hr, w_hz], axis=1))
    w_all = np.ascontiguousarray(np.concatenate([w_hr, w_hz, w_ho], axis=1))

    def step(x_t: np.ndarray, state: State) -> State:
        (h,) = state
        x_r, x_o, x_z = np.split(x_t, 3, axis=-1)
        hw = h @ (w_all if reset_after else w_rz)
        r = rec(x_r + hw[:, :hidden] + b_hr)
        z = rec(x_z + hw[:, hidden : 2 * hidden] + b_hz)
        if reset_after:
            o = act(x_o + r * (hw[:, 2 * hidden :] + b_ho))
        else:
            o = act(x_o + (r * h) @ w_ho + b_ho)
        return (((1.0 - z) * o + z * h).astype(np.float32),)

    return step


# ------------------------------------------------------------------------ rnn


@kernel("rnn")
def rnn(
    ctx: OpContext,
    x: np.ndarray,
    initial_h: np.ndarray,
    weight_ih: np.ndarray,
    weight_hh: np.ndarray,
    bias: np.ndarray | None = None,
    direction: str = "forward",
    output_sequence: Any = False,
    activation: str = "tanh",
) -> tuple[np.ndarray, np.ndarray]:
    x = f32(x)
    _check_rank3(x)
    hidden = int(np.shape(weight_hh)[1])
    act = _activation(activation)
    x_proj = _project(x, f32(weight_ih), _bias(bias, hidden))
    w_t = np.ascontiguousarray(f32(weight_hh).T)

    def step(x_t: np.ndarray, state: State) -> State:
        return (act(x_t + state[0] @ w_t).astype(np.float32),)

    h = _initial_state(initial_h, x.shape[1], hidden, "initial_h")
    outputs, (h,) = _steps(x_proj, (h,), _time_order(x.shape[0], direction), step)
    return (outputs if bool(output_sequence) else outputs[-1:]), h
