"""``assert_generation``: greedy decoding on both sides, each with its own cache.

PyTorch (the test's wrapper, its own buffers or host cache) and Core ML (its own
state or host cache) each decode ``max_new_tokens`` tokens greedily from the prompt.
The test passes when the tokens match (the ``min_token_match`` gate, 1.0 by default)
and, at every step both sides reached with the same history, the logits' cosine
meets ``min_logits_cosine``. A failure names the first divergent step and its
position, both tokens, the logits cosine and the top-5 of each side there; then
replays that step's history through the ``logits`` recipe with every layer's hidden
state as an output, names the first layer whose cosine falls below
``min_layer_cosine``, and judges the step with ``assert_parity`` so the plugin's
diagnosis (the op, its source line, the fix) covers it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import InputMismatchError
from ..gates import GENERATION, names

if TYPE_CHECKING:
    from ..model import CoreMLModel

#: Gate presets by precision: the generation gates of gates.GATE_TABLE (check
#: ``generation``). fp16 steps of a healthy decoder keep a logits cosine above 0.9999
#: (docs/decoders.md); the layer gate is CoreML-LLM's parity protocol's 0.9995.
GENERATION_PRESETS: dict[str, dict[str, float]] = {
    "fp32": {"min_token_match": 1.0, "min_logits_cosine": 0.99999, "min_layer_cosine": 0.99999},
    "fp16": {"min_token_match": 1.0, "min_logits_cosine": 0.999, "min_layer_cosine": 0.9995},
}
#: The compressed precisions' preset.
DEFAULT_PRESET: dict[str, float] = {"min_token_match": 1.0, "min_logits_cosine": 0.99, "min_layer_cosine": 0.999}

#: ``assert_generation(min_token_match=...)``: an argument's source, in messages.
ARGUMENT_WHERE = "assert_generation({what}=...)"


def generation_gates(model: Any, arguments: Mapping[str, Any]) -> dict[str, float]:
    """Every generation gate: the argument, else the model's configured gate (marker,
    command line, ini), else the precision's preset; ``"off"`` is 0.0 (a token rate or a
    cosine at or above it passes). A bad value raises :class:`SettingError` naming its source."""
    from .. import messages
    from ..verdict import resolve_values

    values = dict(GENERATION_PRESETS.get(model.precision, DEFAULT_PRESET))
    changes, _origins = resolve_values(
        model.precision, names(GENERATION), arguments, getattr(model, "gates", None),
        argument_where=ARGUMENT_WHERE, configured_where=messages.CONFIGURED_TOLERANCE,
    )  # fmt: skip
    values.update({name: 0.0 if value is None else value for name, value in changes.items()})
    return values


@dataclass(frozen=True)
class Generation:
    """One side's greedy run: its tokens and the last-position logits of every step."""

    tokens: list[int]
    logits: list[np.ndarray]


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a64, b64 = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
    if not (np.all(np.isfinite(a64)) and np.all(np.isfinite(b64))):
        return float("nan")
    na, nb = float(np.linalg.norm(a64)), float(np.linalg.norm(b64))
    if na == 0 or nb == 0:  # a zero vector (e.g. an RMSNorm after x² overflowed) matches only zero
        return 1.0 if na == nb else 0.0
    return float(a64 @ b64) / (na * nb)


def _last(result: Any) -> np.ndarray:
    logits = result[0] if isinstance(result, (tuple, list)) else result
    row: np.ndarray = np.asarray(logits, dtype=np.float32)[0, -1]
    return row


def generate(model: CoreMLModel, prompt: np.ndarray, steps: int, *, torch_side: bool) -> Generation:
    """Greedy decoding on one side of ``model`` (its own cache), ``steps`` new tokens."""
    decoder = model.decoder
    run = model.reference_prepared if torch_side else model.run_prepared
    tokens: list[int] = []
    logits: list[np.ndarray] = []
    seq = [int(t) for t in prompt]
    if decoder.recipe == "states":
        feed = np.asarray([seq], np.int32)
        for _ in range(steps):
            row = _last(run((feed, np.ones((1, len(seq)), np.int32))))
            token = int(np.argmax(row))
            tokens.append(token)
            logits.append(row)
            seq.append(token)
            feed = np.asarray([[token]], np.int32)
        return Generation(tokens, logits)
    if decoder.recipe == "explicit":
        keys, values = decoder.empty_cache()
        position = 0
        pending = list(seq)
        while len(tokens) < steps:
            token_in = pending.pop(0)
            result = run((np.asarray([[token_in]], np.int32), *decoder.explicit_feed(position, keys, values)))
            keys[..., position, :] = np.asarray(result[1], np.float32)[..., 0, :]
            values[..., position, :] = np.asarray(result[2], np.float32)[..., 0, :]
            position += 1
            if pending:  # still in the prompt
                continue
            row = _last(result)
            token = int(np.argmax(row))
            tokens.append(token)
            logits.append(row)
            pending.append(token)
        return Generation(tokens, logits)
    for _ in range(steps):  # logits: the whole sequence each step
        row = _last(run((np.asarray([seq], np.int32),)))
        token = int(np.argmax(row))
        tokens.append(token)
        logits.append(row)
        seq.append(token)
    return Generation(tokens, logits)


def _top5(row: np.ndarray) -> str:
    order = np.argsort(-row.astype(np.float64), kind="stable")[:5]
    return ", ".join(f"{int(i)} ({float(row[i]):.4g})" for i in order)


def assert_generation(
    coreml_model: CoreMLModel,
    prompt_ids: Any,
    max_new_tokens: int = 16,
    **gates: Any,
) -> list[int]:
    """Greedy-decode ``max_new_tokens`` tokens on both sides; fail at the first divergence.

    ``prompt_ids`` is ``(1, L)`` or ``(L,)`` integer token ids. Returns Core ML's tokens.
    ``gates``: the generation gates of ``gates.GATE_TABLE`` (another keyword is a
    ``TypeError``), each the argument, else the marker, command line or ini setting
    (``--coreml-min-token-match``...), else the precision's :data:`GENERATION_PRESETS`
    row; ``"off"`` disables: ``min_token_match`` (fraction of the new tokens equal at
    their position), ``min_logits_cosine`` (every step with a shared history),
    ``min_layer_cosine`` (names the first layer below it at the failing step).
    """
    __tracebackhide__ = True
    from ..compare import ParityFailure
    from ..errors import SettingError
    from ..verdict import check_keywords

    check_keywords(gates, "assert_generation", GENERATION)

    model = coreml_model
    bad: SettingError | None = None  # a bad gate fails first, as in assert_parity
    try:
        resolved = generation_gates(model, gates)
    except SettingError as exc:
        bad = exc
    if bad is not None:
        raise SettingError(str(bad))  # outside the except block: one message
    token_gate = resolved["min_token_match"]
    cos_gate = resolved["min_logits_cosine"]
    layer_gate = resolved["min_layer_cosine"]
    decoder = getattr(model, "decoder", None)
    if decoder is None:
        raise InputMismatchError(
            "assert_generation needs a coreml_model bound to a causal LM (a transformers "
            f"*ForCausalLM as torch_model); {model!r} is not one"
        )
    if not isinstance(max_new_tokens, int) or isinstance(max_new_tokens, bool) or max_new_tokens < 1:
        raise InputMismatchError(f"max_new_tokens must be an int >= 1; got {max_new_tokens!r}")
    prompt = np.asarray(prompt_ids.detach().cpu().numpy() if hasattr(prompt_ids, "detach") else prompt_ids)
    if prompt.ndim == 2 and prompt.shape[0] == 1:
        prompt = prompt[0]
    if prompt.ndim != 1 or prompt.size == 0 or prompt.dtype.kind not in "iu":
        raise InputMismatchError(
            f"prompt_ids must be integer token ids of shape (1, L) or (L,); got {prompt.dtype} {prompt.shape}"
        )
    if prompt.size + max_new_tokens > decoder.context:
        raise InputMismatchError(
            f"{prompt.size} prompt tokens + {max_new_tokens} new ones exceed the decoder's context "
            f"{decoder.context} (set a larger one with the coreml_decoder fixture)"
        )

    model.reset_state()
    expected = generate(model, prompt, max_new_tokens, torch_side=True)
    got = generate(model, prompt, max_new_tokens, torch_side=False)
    model.reset_state()
    matches = [a == b for a, b in zip(got.tokens, expected.tokens, strict=True)]
    rate = sum(matches) / len(matches)
    first = matches.index(False) if False in matches else None
    shared = max_new_tokens if first is None else first + 1  # steps with the same history
    cosines = [cosine(got.logits[i], expected.logits[i]) for i in range(shared)]
    low = [i for i, c in enumerate(cosines) if not c >= cos_gate]
    if rate >= token_gate and not low:
        return got.tokens
    step = first if first is not None else low[0]
    if low and first is not None and low[0] < first:
        step = low[0]
    position = prompt.size + step
    lines = [
        f"generation diverged from PyTorch ({model.precision}, {decoder.describe()}):",
        f"  token match {rate:.3f} ({sum(matches)}/{len(matches)} new tokens; gate {token_gate:g}); "
        f"min logits cosine {min(cosines):.6f} over {shared} shared-history steps (gate {cos_gate:g})",
        f"  first divergent step {step} (position {position}): "
        f"Core ML token {got.tokens[step]}, PyTorch token {expected.tokens[step]}; "
        f"logits cosine {cosines[step]:.6f}",
        f"  top-5 Core ML: {_top5(got.logits[step])}",
        f"  top-5 PyTorch: {_top5(expected.logits[step])}",
    ]
    history = np.asarray([[*prompt.tolist(), *expected.tokens[:step]]], np.int64)
    replay, layer_lines = _layers(model, history, layer_gate)
    lines += layer_lines
    message = "\n".join(lines)
    if replay is None:
        raise ParityFailure(message, model=None)
    from ..compare import assert_parity

    try:
        assert_parity(replay, history)
    except ParityFailure as failure:
        raise ParityFailure(
            message + f"\n  the step replayed through the 'logits' recipe:\n{failure}",
            model=failure.model, inputs=failure.inputs, output=failure.output,
            rtol=failure.rtol, atol=failure.atol, judgement=failure.judgement,
        ) from None  # fmt: skip
    raise ParityFailure(
        message + "\n  the step replayed through the 'logits' recipe passes assert_parity: "
        "a near tie between the top tokens flipped (compare the top-5 margins)",
        model=None,
    )


def _layers(model: CoreMLModel, history: np.ndarray, gate: float) -> tuple[Any, list[str]]:
    """(the replay model, lines naming the first layer below ``gate`` at the step)."""
    import torch

    from ..convert import ConversionError
    from ..model import CoreMLModel

    decoder = model.decoder
    replay = CoreMLModel(model.settings, model.runtime)
    spec = {"recipe": "logits", "context": decoder.context, "layers": True}
    try:
        replay.bind(decoder.lm, (torch.from_numpy(history),), model.node_id, decoder=spec)
    except ConversionError as exc:
        return None, [f"  (the per-layer replay did not convert: {exc.summary})"]
    got = replay(history)
    expected = replay.reference(history)
    layers = []
    for a, e in zip(got[1:], expected[1:], strict=True):
        layers.append(cosine(np.asarray(a)[0, -1], np.asarray(e)[0, -1]))
    below = [i for i, c in enumerate(layers) if not c >= gate]
    shown = ", ".join(f"{c:.6f}" for c in layers)
    if below:
        i = below[0]
        where = "the embeddings" if i == 0 else f"decoder layer {i - 1}"
        if i == len(layers) - 1:
            where = "the final norm"
        head = f"  first layer below the layer cosine gate {gate:g}: hidden_{i} ({where}), cosine {layers[i]:.6f}"
    else:
        head = f"  every layer's hidden state meets the layer cosine gate {gate:g} at this step"
    return replay, [head, f"  hidden-state cosines (embeddings, layers..., final norm): {shown}"]
