"""Real architectures for tests: tiny transformers configs with random weights, torchvision.

Nothing is downloaded. ``import_transformers`` works around torchvision wheels built
for CUDA next to CPU torch (``operator torchvision::nms does not exist``, which also
breaks ``import transformers``): it defines the two operator schemas torchvision's
meta registrations need, so torchvision's Python models import; its C++ ops (nms)
stay unavailable, which the models used here never call.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import pytest
import torch

#: The same workaround as source text, for pytester conftests.
TORCHVISION_WORKAROUND = '''
import torch

try:
    import torchvision  # noqa: F401
except RuntimeError:  # "operator torchvision::nms does not exist": a CUDA wheel, CPU torch
    _TORCHVISION_OPS = torch.library.Library("torchvision", "DEF")
    _TORCHVISION_OPS.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    _TORCHVISION_OPS.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
'''

_LIBRARY: list[Any] = []


def _torchvision_workaround() -> None:
    try:
        import torchvision  # noqa: F401
    except RuntimeError as exc:
        if "torchvision::nms" not in str(exc):
            raise
        library = torch.library.Library("torchvision", "DEF")
        library.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        library.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        _LIBRARY.append(library)  # the definitions live as long as the library object
        import sys

        for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
            del sys.modules[name]  # the failed import's half-initialized modules


def import_torchvision() -> ModuleType:
    _torchvision_workaround()
    return pytest.importorskip("torchvision")


def import_transformers() -> ModuleType:
    _torchvision_workaround()
    return pytest.importorskip("transformers")


#: Tiny sizes shared by every config: 2 layers, hidden 32, 4 heads, vocabulary 128.
VOCAB = 128
_COMMON = dict(
    vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
    intermediate_size=64, max_position_embeddings=64,
)  # fmt: skip


def tiny(name: str) -> Any:
    """A tiny transformers model with random weights (seeded), in eval mode."""
    tf = import_transformers()
    torch.manual_seed(0)
    decoders = {"llama": "Llama", "qwen2": "Qwen2", "mistral": "Mistral"}
    if name in decoders:
        family = decoders[name]
        config = getattr(tf, f"{family}Config")(**_COMMON, num_key_value_heads=2)
        model = getattr(tf, f"{family}ForCausalLM")(config)
    elif name == "bert":
        model = tf.BertModel(tf.BertConfig(**_COMMON))
    elif name == "gpt2":
        model = tf.GPT2LMHeadModel(tf.GPT2Config(vocab_size=VOCAB, n_embd=32, n_layer=2, n_head=4, n_positions=64))
    elif name == "t5":
        model = tf.T5EncoderModel(
            tf.T5Config(vocab_size=VOCAB, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4)
        )
    elif name == "bart":
        model = tf.BartModel(
            tf.BartConfig(
                vocab_size=VOCAB, d_model=32, encoder_layers=2, decoder_layers=2,
                encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=64,
                decoder_ffn_dim=64, max_position_embeddings=64,
            )
        )
    else:
        raise ValueError(f"no tiny config for {name!r}")
    return model.eval()


def token_ids(length: int = 8, seed: int = 1) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, VOCAB, (1, length), generator=generator)
