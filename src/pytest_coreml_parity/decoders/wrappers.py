"""The modules the plugin converts in place of a raw causal LM, one per recipe.

Each wraps the user's ``*ForCausalLM`` unchanged and returns ``logits`` (a tensor,
not a ``ModelOutput``). Each builds its own additive causal mask from the token
positions and hands it to the model as a prepared 4-D mask, so transformers' mask
code (``diff``, ``new_ones``: ops coremltools 9.0 cannot convert) never runs; the
mask value is finite and fp16 holds it (:data:`MASK_VALUE`), so a fully masked row
stays finite at every precision.

- :class:`StatefulDecoder` (``states``, Apple's recipe): the KV cache is two
  registered buffers (``keyCache``, ``valueCache``; ``(layers, 1, kv_heads, context,
  head_dim)``) updated in place by slice assignment, which the plugin declares as
  fp16 Core ML states. Inputs ``input_ids`` ``(1, L)`` and ``attention_mask``
  ``(1, past + L)``: the write position is ``past``, read from the two shapes, so no
  integer counter lives in the state; ``L`` and ``past + L`` are flexible
  (``RangeDim``), so one program serves a prefill of any length and a one-token decode.
- :class:`ExplicitDecoder` (``explicit``, ExecuTorch's static-cache I/O): the caches
  are inputs and the new keys and values outputs; the mask is an input; one token a
  call. The caller writes the new entries into its cache.
- :class:`LogitsDecoder` (``logits``): no cache; the whole sequence's logits (and,
  with ``layers=True``, every layer's hidden state, what ``assert_generation`` reads
  to name the first layer that departs).
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from typing import Any

import torch

from ..masks import FP16_SAFE_FILL

#: The additive mask value: finite, held by float16 (a fully masked row stays finite).
MASK_VALUE = FP16_SAFE_FILL


def dims(config: Any) -> tuple[int, int, int]:
    """(layers, kv heads, head dim) of a transformers decoder config."""
    layers = int(config.num_hidden_layers)
    heads = int(config.num_attention_heads)
    kv_heads = int(getattr(config, "num_key_value_heads", None) or heads)
    head_dim = getattr(config, "head_dim", None) or int(config.hidden_size) // heads
    return layers, kv_heads, int(head_dim)


def causal_mask(positions: torch.Tensor, length: Any, keep: torch.Tensor | None) -> torch.Tensor:
    """Additive ``(1, 1, L, length)`` mask: key ``j`` is visible to query ``i`` when
    ``j <= positions[i]`` and ``keep[j]`` (a padding mask, nonzero = keep)."""
    columns = torch.arange(length)
    allowed = columns[None, :] <= positions[:, None]
    if keep is not None:
        allowed = allowed & (keep[None, :] > 0)
    # (~allowed) * value, not torch.where: coremltools 9.0 declares a scalar-branch
    # select's output shape as () under flexible shapes.
    return ((~allowed).to(torch.float32) * MASK_VALUE)[None, None]


@contextlib.contextmanager
def _quiet_trace() -> Iterator[None]:
    """Silence torch's TracerWarnings from transformers' code: the branches they flag
    (``q_length == 1``, ``is_causal``) are decided by the prepared 4-D mask, the same
    way for every length."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)  # type: ignore[attr-defined]
        yield


class _SliceCache:
    """Duck-typed transformers cache: slice updates into the wrapper's buffers."""

    def __init__(self, keys: torch.Tensor, values: torch.Tensor, begin: Any, end: Any) -> None:
        self.keys, self.values, self.begin, self.end = keys, values, begin, end

    def update(
        self, key: torch.Tensor, value: torch.Tensor, layer_idx: int, *args: Any, **kwargs: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        # Core ML states are float16 at every compute precision: the reference stores what
        # the device stores (a rounding the fp16 program already does: idempotent there).
        self.keys[layer_idx, :, :, self.begin : self.end, :] = key.to(torch.float16).to(self.keys.dtype)
        self.values[layer_idx, :, :, self.begin : self.end, :] = value.to(torch.float16).to(self.values.dtype)
        return (
            self.keys[layer_idx, :, :, : self.end, :].to(key.dtype),
            self.values[layer_idx, :, :, : self.end, :].to(value.dtype),
        )


class _ConcatCache:
    """Duck-typed transformers cache: the past (an input) and the new entries, concatenated."""

    def __init__(self, keys: torch.Tensor, values: torch.Tensor) -> None:
        self.past_keys, self.past_values = keys, values
        self.new_keys: list[torch.Tensor] = []
        self.new_values: list[torch.Tensor] = []

    def update(
        self, key: torch.Tensor, value: torch.Tensor, layer_idx: int, *args: Any, **kwargs: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        self.new_keys.append(key)
        self.new_values.append(value)
        return (
            torch.cat([self.past_keys[layer_idx].to(key.dtype), key], dim=-2),
            torch.cat([self.past_values[layer_idx].to(value.dtype), value], dim=-2),
        )


class StatefulDecoder(torch.nn.Module):
    """``states``: the KV cache as in-place-updated buffers (Core ML states)."""

    def __init__(self, lm: torch.nn.Module, context: int) -> None:
        super().__init__()
        self.lm = lm
        layers, kv_heads, head_dim = dims(lm.config)
        shape = (layers, 1, kv_heads, context, head_dim)
        self.register_buffer("keyCache", torch.zeros(shape))
        self.register_buffer("valueCache", torch.zeros(shape))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        length = input_ids.shape[-1]
        end = attention_mask.shape[-1]
        begin = end - length
        positions = torch.arange(length) + begin
        mask = causal_mask(positions, end, attention_mask[0])
        keys = self.get_buffer("keyCache")
        values = self.get_buffer("valueCache")
        cache = _SliceCache(keys, values, begin, end)
        with _quiet_trace():
            out = self.lm(
                input_ids=input_ids, attention_mask=mask, position_ids=positions[None],
                cache=cache, use_cache=True,
            )  # fmt: skip
        logits: torch.Tensor = out.logits
        return logits


class ExplicitDecoder(torch.nn.Module):
    """``explicit``: caches in, new entries out, mask and position as inputs."""

    def __init__(self, lm: torch.nn.Module) -> None:
        super().__init__()
        self.lm = lm

    def forward(
        self,
        input_ids: torch.Tensor,
        position: torch.Tensor,
        attention_mask: torch.Tensor,
        key_cache: torch.Tensor,
        value_cache: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        cache = _ConcatCache(key_cache, value_cache)
        with _quiet_trace():
            out = self.lm(
                input_ids=input_ids, attention_mask=attention_mask,
                position_ids=position.to(torch.int64), cache=cache, use_cache=True,
            )  # fmt: skip
        return out.logits, torch.stack(cache.new_keys), torch.stack(cache.new_values)


class LogitsDecoder(torch.nn.Module):
    """``logits``: the whole sequence at once, no cache; ``layers`` adds hidden states."""

    def __init__(self, lm: torch.nn.Module, *, layers: bool = False) -> None:
        super().__init__()
        self.lm = lm
        self.layers = layers

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> Any:
        length = input_ids.shape[-1]
        positions = torch.arange(length)
        keep = None if attention_mask is None else attention_mask[0]
        mask = causal_mask(positions, length, keep)
        with _quiet_trace():
            out = self.lm(
                input_ids=input_ids, attention_mask=mask, position_ids=positions[None],
                use_cache=False, output_hidden_states=self.layers,
            )  # fmt: skip
        if not self.layers:
            return out.logits
        return (out.logits, *out.hidden_states)
