"""Which causal LMs the plugin wraps, how (the recipes), and how a call is completed.

:func:`is_causal_lm` recognises a transformers ``*ForCausalLM`` / ``*LMHeadModel``
(duck-typed: no transformers import). :func:`prepare` turns it and the test's token
ids into the module to convert, its example inputs and the ``ct.convert`` inputs
(flexible where the recipe allows); the returned :class:`Decoder` completes a call
given only token ids (``coreml_model(ids)``, ``assert_parity(coreml_model, ids)``) with
the inputs the recipe needs, and knows how to drive one greedy step.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import InputMismatchError

#: The KV-cache recipes: name -> what it is (the test id or failure names it).
#: The recipe that leaves a causal LM unwrapped (it then converts like any model).
NO_WRAPPER = "none"
RECIPES: dict[str, str] = {
    "states": "KV cache as fp16 Core ML states (Apple's recipe: slice updates, flexible prefill)",
    "explicit": "KV cache as inputs and outputs, mask as an input (ExecuTorch's static cache)",
    "logits": "no cache: the whole sequence's logits",
    "none": "no wrapper: the model converts as given (converter shims, outputs by key)",
}
DEFAULT_RECIPE = "states"
#: Positions the cache holds unless the test's ``coreml_decoder`` says otherwise.
DEFAULT_CONTEXT = 128


def is_causal_lm(model: Any) -> bool:
    """A transformers causal LM: a ``GenerationMixin`` with a decoder config and logits."""
    names = {cls.__name__ for cls in type(model).__mro__}
    config = getattr(model, "config", None)
    return (
        "GenerationMixin" in names
        and config is not None
        and hasattr(config, "num_hidden_layers")
        and not getattr(config, "is_encoder_decoder", False)
    )


@dataclass
class Decoder:
    """A bound decoder: the recipe, the user's LM, and the position a call continues at."""

    recipe: str
    lm: Any
    context: int
    #: Tokens the current sequence holds (the ``states`` recipe's cache, on both sides).
    position: int = 0
    layers: tuple[int, int, int] = (0, 0, 0)
    padded: bool = False
    _seen: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        return f"decoder recipe {self.recipe!r} ({RECIPES[self.recipe]}; context {self.context})"

    def complete(self, inputs: tuple[Any, ...]) -> tuple[Any, ...]:
        """The inputs of one call given only token ids; advances :attr:`position`."""
        if self.recipe == "logits":
            return inputs
        ids = np.asarray(_numpy(inputs[0]))
        if ids.ndim != 2 or ids.shape[0] != 1:
            raise InputMismatchError(
                f"a decoder call takes token ids of shape (1, L); got {tuple(ids.shape)}"
            )
        if self.recipe == "explicit":
            if len(inputs) != 1:
                return inputs
            if ids.shape[1] != 1 or self.position > 0:
                raise InputMismatchError(
                    "the 'explicit' recipe runs one token a call from its own cache; drive it "
                    "with assert_generation, or pass all five inputs "
                    "(input_ids, position, attention_mask, key_cache, value_cache)"
                )
            self.position = 1
            return (ids, *self.explicit_feed(0, *self.empty_cache()))
        if len(inputs) == 2:
            mask = np.asarray(_numpy(inputs[1]))
        else:
            mask = np.ones((1, self.position + ids.shape[1]), dtype=np.int32)
        end = mask.shape[-1]
        if end > self.context:
            raise InputMismatchError(
                f"the sequence reaches position {end}, beyond the cache's {self.context} "
                "(set a larger context with the coreml_decoder fixture)"
            )
        self.position = end
        return (ids, mask)

    def empty_cache(self) -> tuple[np.ndarray, np.ndarray]:
        layers, kv_heads, head_dim = self.layers
        shape = (layers, 1, kv_heads, self.context - 1, head_dim)
        return np.zeros(shape, np.float32), np.zeros(shape, np.float32)

    def explicit_feed(
        self, position: int, keys: np.ndarray, values: np.ndarray
    ) -> tuple[np.ndarray, ...]:
        """(position, mask, keys, values) of the ``explicit`` recipe at ``position``."""
        slots = self.context - 1
        if position >= slots:
            raise InputMismatchError(
                f"the sequence reaches position {position + 1}, beyond the cache's {self.context} "
                "(set a larger context with the coreml_decoder fixture)"
            )
        from .wrappers import MASK_VALUE

        mask = np.full((1, 1, 1, slots + 1), MASK_VALUE, np.float32)
        mask[..., :position] = 0.0
        mask[..., -1] = 0.0
        return np.array([[position]], np.int32), mask, keys, values


def parse(value: Any) -> tuple[str, int | None, bool]:
    """(recipe, context, layers) from the ``coreml_decoder`` fixture's value (None: the
    defaults; context None: not given, :func:`prepare` picks it from the model; ``layers``,
    internal: the ``logits`` recipe also outputs hidden states)."""
    if value is None:
        return DEFAULT_RECIPE, None, False
    if isinstance(value, str):
        value = {"recipe": value}
    if not isinstance(value, Mapping) or set(value) - {"recipe", "context", "layers"}:
        raise TypeError(
            "coreml_decoder must be a recipe name (" + ", ".join(RECIPES) + ") or a dict with "
            f"keys 'recipe' and 'context'; got {value!r}"
        )
    recipe = value.get("recipe", DEFAULT_RECIPE)
    context = value.get("context")
    if recipe not in RECIPES:
        raise TypeError(
            f"coreml_decoder recipe {recipe!r} is not one of: " + ", ".join(RECIPES)
        )
    if context is not None and (not isinstance(context, int) or isinstance(context, bool) or context < 2):
        raise TypeError(f"coreml_decoder context must be an int >= 2; got {context!r}")
    return recipe, context, bool(value.get("layers", False))


def model_context(config: Any, context: int | None) -> int:
    """The cache length: the one the user gave, else :data:`DEFAULT_CONTEXT` capped at the
    model's positions (``max_position_embeddings``; GPT-2's ``n_positions``), so a long
    sequence stops at the plugin's "beyond the cache" error, not inside the position
    embedding. A given context beyond the model's positions is a TypeError naming both."""
    positions = getattr(config, "max_position_embeddings", None)
    if not isinstance(positions, int) or isinstance(positions, bool) or positions < 2:
        return DEFAULT_CONTEXT if context is None else context
    if context is None:
        return min(DEFAULT_CONTEXT, positions)
    if context > positions:
        raise TypeError(
            f"coreml_decoder context {context} exceeds the model's {positions} positions "
            f"({type(config).__name__}.max_position_embeddings); give a context <= {positions}"
        )
    return context


def prepare(
    lm: Any, example_inputs: tuple[Any, ...], recipe: str, context: int | None, *, layers: bool = False
) -> tuple[Any, tuple[Any, ...], dict[str, Any], Decoder]:
    """(module to convert, its example inputs, ct.convert keywords, the Decoder)."""
    import torch

    from ..ct_types import ct_type
    from . import wrappers

    if not example_inputs or len(example_inputs) > 2:
        raise TypeError(
            f"a causal LM's example_inputs are (input_ids,) or (input_ids, attention_mask); "
            f"got {len(example_inputs)} tensors"
        )
    ids = example_inputs[0]
    if ids.dim() != 2 or ids.shape[0] != 1 or ids.dtype.is_floating_point:
        raise TypeError(
            f"a causal LM's first example input is integer token ids of shape (1, L); got "
            f"{ids.dtype} {tuple(ids.shape)}"
        )
    length = int(ids.shape[1])
    context = model_context(lm.config, context)
    if length > context:
        raise TypeError(f"the example's {length} tokens exceed the decoder context {context}")
    lm = lm.eval()
    decoder = Decoder(recipe, lm, context, layers=wrappers.dims(lm.config))
    seq = ct_type("RangeDim", 1, context, default=length)
    ids_type = ct_type("TensorType", name="input_ids", shape=(1, seq), dtype=np.int32)
    module: Any
    if recipe == "states":
        module = wrappers.StatefulDecoder(lm, context).eval()
        mask = (
            example_inputs[1].to(torch.int32)
            if len(example_inputs) == 2
            else torch.ones(1, length, dtype=torch.int32)
        )
        end = ct_type("RangeDim", 1, context, default=length)
        inputs: tuple[Any, ...] = (ids, mask)
        mask_type = ct_type("TensorType", name="attention_mask", shape=(1, end), dtype=np.int32)
        types = [ids_type, mask_type]
        outputs = [ct_type("TensorType", name="logits")]
    elif recipe == "explicit":
        module = wrappers.ExplicitDecoder(lm).eval()
        keys, values = decoder.empty_cache()
        position, mask_array, _, _ = decoder.explicit_feed(0, keys, values)
        inputs = (
            ids[:, :1], torch.from_numpy(position), torch.from_numpy(mask_array),
            torch.from_numpy(keys), torch.from_numpy(values),
        )  # fmt: skip
        names = ("input_ids", "position", "attention_mask", "key_cache", "value_cache")
        types = [
            ct_type(
                "TensorType", name=name, shape=tuple(x.shape),
                dtype=np.int32 if i < 2 else np.float32,
            )
            for i, (name, x) in enumerate(zip(names, inputs, strict=True))
        ]
        outputs = [ct_type("TensorType", name=n) for n in ("logits", "new_keys", "new_values")]
    else:
        module = wrappers.LogitsDecoder(lm, layers=layers).eval()
        inputs = tuple(example_inputs)
        types = [ids_type]
        if len(example_inputs) == 2:
            types.append(ct_type("TensorType", name="attention_mask", shape=(1, seq), dtype=np.int32))
            decoder.padded = True
        count = 1 + (wrappers.dims(lm.config)[0] + 1 if layers else 0)
        outputs = [ct_type("TensorType", name="logits")]
        outputs += [ct_type("TensorType", name=f"hidden_{i}") for i in range(count - 1)]
    return module, inputs, {"inputs": types, "outputs": outputs}, decoder


def _numpy(value: Any) -> Any:
    if hasattr(value, "detach"):
        return value.detach().cpu().numpy()
    return value
