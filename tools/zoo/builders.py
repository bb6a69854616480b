"""The zoo's constructors: real architectures, random weights, seeded, in eval mode.

Nothing is downloaded: torchvision and timm models are built with ``weights=None`` /
``pretrained=False``, transformers models from tiny configs. Every builder seeds
torch first, so a model's weights (and so its conversion cache key) are the same in
every process. Libraries are imported inside the builders, after
:func:`~.torchvision_guard.ensure_torchvision_importable`.
"""

from __future__ import annotations

import importlib
from typing import Any

import torch

from .calibrate import calibrate_batch_norm
from .torchvision_guard import ensure_torchvision_importable

#: Tiny transformers configs: vocabulary and sequence length of the token inputs.
VOCAB = 1000
SEQ = 16
#: Random batches the batch norm statistics are averaged over (batch 2: a 1x1 map
#: in train mode needs more than one value per channel).
CALIBRATION_BATCHES = 3
CALIBRATION_BATCH_SIZE = 2
_SEED = 0


def image(size: int) -> tuple[torch.Tensor, ...]:
    """One seeded (1, 3, size, size) image-like input (standard normal, as after normalization)."""
    generator = torch.Generator().manual_seed(_SEED)
    return (torch.randn(1, 3, size, size, generator=generator),)


def token_ids(vocab: int, length: int) -> tuple[torch.Tensor, ...]:
    """One seeded (1, length) int64 token-id input."""
    generator = torch.Generator().manual_seed(_SEED)
    return (torch.randint(0, vocab, (1, length), generator=generator),)


def mel_features() -> tuple[torch.Tensor, ...]:
    """A seeded (1, 16, 64) log-mel input for the tiny Whisper encoder."""
    generator = torch.Generator().manual_seed(_SEED)
    return (torch.randn(1, 16, 64, generator=generator),)


def calibration_images(size: int) -> list[tuple[torch.Tensor]]:
    """The random batches batch norm is calibrated on (seeded apart from the example input)."""
    generator = torch.Generator().manual_seed(_SEED + 1)
    shape = (CALIBRATION_BATCH_SIZE, 3, size, size)
    return [(torch.randn(*shape, generator=generator),) for _ in range(CALIBRATION_BATCHES)]


def _torchvision() -> Any:
    ensure_torchvision_importable()
    return importlib.import_module("torchvision")


# torchvision ---------------------------------------------------------------


def torchvision_classifier(name: str, size: int) -> torch.nn.Module:
    """``torchvision.models.<name>(weights=None)``, batch norm calibrated."""
    models = _torchvision().models
    torch.manual_seed(_SEED)
    model: torch.nn.Module = getattr(models, name)(weights=None)
    _randomize_zero_heads(model)
    return calibrate_batch_norm(model, calibration_images(size))


def _randomize_zero_heads(model: torch.nn.Module) -> None:
    """Give a zero-initialized classifier (torchvision's ViT head) random weights.

    A trained head is not zero, and a zero head makes every output 0: parity would
    compare nothing.
    """
    for module in model.modules():
        if isinstance(module, torch.nn.Linear) and not module.weight.any():
            torch.nn.init.trunc_normal_(module.weight, std=0.02)


def deeplab() -> torch.nn.Module:
    """DeepLabV3 with a MobileNetV3-Large backbone, as torchvision builds it (no aux head)."""
    segmentation = _torchvision().models.segmentation
    torch.manual_seed(_SEED)
    model: torch.nn.Module = segmentation.deeplabv3_mobilenet_v3_large(weights=None, weights_backbone=None)
    return calibrate_batch_norm(model, calibration_images(224))


class SSDNetwork(torch.nn.Module):
    """An SSD's network without its pre- and post-processing: backbone features into the head.

    What is converted for a device: the eval forward of torchvision's SSD ends in
    batched NMS and a list of per-image dicts, which need torchvision's compiled ops.
    """

    def __init__(self, ssd: Any) -> None:
        super().__init__()
        self.backbone = ssd.backbone
        self.head = ssd.head

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        features = list(self.backbone(images).values())
        result: dict[str, torch.Tensor] = self.head(features)
        return result


def ssdlite_network() -> torch.nn.Module:
    """SSDLite320 (MobileNetV3-Large) as :class:`SSDNetwork`, batch norm calibrated."""
    detection = _torchvision().models.detection
    torch.manual_seed(_SEED)
    ssd = detection.ssdlite320_mobilenet_v3_large(weights=None, weights_backbone=None)
    return calibrate_batch_norm(SSDNetwork(ssd), calibration_images(320))


# timm ----------------------------------------------------------------------


def timm_model(name: str, size: int) -> torch.nn.Module:
    """``timm.create_model(name, pretrained=False)``, calibrated, reparameterized where it can be."""
    ensure_torchvision_importable()
    timm: Any = importlib.import_module("timm")
    utils: Any = importlib.import_module("timm.utils")

    torch.manual_seed(_SEED)
    model = calibrate_batch_norm(timm.create_model(name, pretrained=False), calibration_images(size))
    reparameterized: torch.nn.Module = utils.reparameterize_model(model)  # a no-op for most families
    return reparameterized.eval()


# transformers (tiny configs) ----------------------------------------------------

_ENCODER = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 128}
_DECODER = {
    "vocab_size": VOCAB, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
    "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 64,
}  # fmt: skip


def _transformers() -> Any:
    ensure_torchvision_importable()
    import transformers

    return transformers


def _hf(model_class: str, config_class: str, **config: Any) -> torch.nn.Module:
    t = _transformers()
    torch.manual_seed(_SEED)
    model: torch.nn.Module = getattr(t, model_class)(getattr(t, config_class)(**config))
    return model.eval()


def bert() -> torch.nn.Module:
    return _hf("BertModel", "BertConfig", vocab_size=VOCAB, max_position_embeddings=64, **_ENCODER)


def distilbert() -> torch.nn.Module:
    return _hf(
        "DistilBertModel", "DistilBertConfig", vocab_size=VOCAB, dim=64, n_layers=2, n_heads=4,
        hidden_dim=128, max_position_embeddings=64,
    )


def hf_vit() -> torch.nn.Module:
    return _hf("ViTForImageClassification", "ViTConfig", image_size=32, patch_size=4, num_labels=10, **_ENCODER)


def clip_vision() -> torch.nn.Module:
    return _hf("CLIPVisionModel", "CLIPVisionConfig", image_size=32, patch_size=4, **_ENCODER)


def whisper_encoder() -> torch.nn.Module:
    t = _transformers()
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    config = t.WhisperConfig(
        vocab_size=VOCAB, num_mel_bins=16, d_model=64, encoder_layers=2, encoder_attention_heads=4,
        encoder_ffn_dim=128, decoder_layers=2, decoder_attention_heads=4, decoder_ffn_dim=128,
        max_source_positions=32, max_target_positions=64,
        pad_token_id=0, bos_token_id=1, eos_token_id=2, decoder_start_token_id=1,
    )
    torch.manual_seed(_SEED)
    encoder: torch.nn.Module = WhisperEncoder(config)
    return encoder.eval()


def t5_encoder() -> torch.nn.Module:
    return _hf("T5EncoderModel", "T5Config", vocab_size=VOCAB, d_model=64, d_kv=16, d_ff=128, num_layers=2, num_heads=4)


def bart() -> torch.nn.Module:
    return _hf(
        "BartModel", "BartConfig", vocab_size=VOCAB, d_model=64, encoder_layers=2, decoder_layers=2,
        encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=128, decoder_ffn_dim=128,
        max_position_embeddings=64,
    )


def gpt2() -> torch.nn.Module:
    return _hf(
        "GPT2LMHeadModel", "GPT2Config", vocab_size=VOCAB, n_positions=64, n_embd=64, n_layer=2,
        n_head=4, bos_token_id=0, eos_token_id=0,
    )


def llama() -> torch.nn.Module:
    return _hf("LlamaForCausalLM", "LlamaConfig", **_DECODER)


def qwen2() -> torch.nn.Module:
    return _hf("Qwen2ForCausalLM", "Qwen2Config", **_DECODER)


def mistral() -> torch.nn.Module:
    return _hf("MistralForCausalLM", "MistralConfig", **_DECODER)
