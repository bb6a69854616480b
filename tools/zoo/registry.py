"""The zoo's entries: name, library, family, builder, example inputs, notes.

Builders live in :mod:`.builders`; this module is only the table. A model is built
once per process (:meth:`ZooModel.model`), so the generated test file's fixtures can
return it for every test without rebuilding a large net.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import builders as b

#: The libraries the zoo draws from (the ``library`` column of docs/zoo.md).
LIBRARIES: tuple[str, ...] = ("torchvision", "timm", "transformers")


@dataclass(frozen=True)
class ZooModel:
    """One zoo entry. ``build`` returns the model in eval mode, random weights, calibrated."""

    name: str
    library: str
    family: str
    build: Callable[[], Any] = field(repr=False)
    inputs: Callable[[], tuple[Any, ...]] = field(repr=False)
    notes: str = ""

    def model(self) -> Any:
        """The built model, once per process."""
        return _built(self.name)

    def example_inputs(self) -> tuple[Any, ...]:
        """The example inputs (seeded, so every call returns equal tensors)."""
        return self.inputs()


def _tv(name: str, family: str, notes: str = "", size: int = 224) -> ZooModel:
    return ZooModel(
        name, "torchvision", family, functools.partial(b.torchvision_classifier, name, size),
        functools.partial(b.image, size), notes,
    )


def _timm(name: str, family: str, notes: str = "", size: int = 224) -> ZooModel:
    return ZooModel(
        f"timm/{name}", "timm", family, functools.partial(b.timm_model, name, size),
        functools.partial(b.image, size), notes,
    )


def _hf(name: str, family: str, build: Callable[[], Any], inputs: Callable[[], tuple[Any, ...]], notes: str = "") -> ZooModel:
    return ZooModel(f"hf/{name}", "transformers", family, build, inputs, notes)


_TOKENS = functools.partial(b.token_ids, b.VOCAB, b.SEQ)
_DEFAULTS = "tiny config, default attention (sdpa), raw model (outputs a ModelOutput)"
_LM = "tiny config, default attention (sdpa), raw model: logits and a DynamicCache (use_cache default)"

ENTRIES: tuple[ZooModel, ...] = (
    _tv("resnet18", "cnn"),
    _tv("mobilenet_v3_small", "mobile cnn", "hardswish, squeeze-excite"),
    _tv("efficientnet_b0", "mobile cnn", "depthwise, squeeze-excite, SiLU"),
    _tv("convnext_tiny", "cnn", "7x7 depthwise, layer norm, no batch norm"),
    _tv("regnet_y_400mf", "cnn", "grouped conv, squeeze-excite"),
    _tv("shufflenet_v2_x0_5", "mobile cnn", "channel shuffle"),
    _tv("vit_b_16", "vision transformer", "nn.MultiheadAttention (encoder blocks)"),
    _tv("swin_t", "vision transformer", "shifted windows, relative position bias"),
    ZooModel(
        "deeplabv3_mobilenet_v3_large", "torchvision", "segmentation", b.deeplab, functools.partial(b.image, 224),
        "raw model: returns an OrderedDict {'out': ...}; no aux head; 224x224",
    ),
    ZooModel(
        "ssdlite320_mobilenet_v3_large", "torchvision", "detection", b.ssdlite_network, functools.partial(b.image, 320),
        "the network (backbone + head) returning its dict {bbox_regression, cls_logits}: "
        "the eval forward ends in NMS and a list of dicts, which needs torchvision's C++ ops",
    ),
    _timm("levit_128s", "vision transformer", "attention with conv stem, batch norm in linear layers"),
    _timm("mobilevit_xxs", "hybrid", "conv + transformer blocks, unfold/fold", size=256),
    _timm("fastvit_t8", "hybrid", "reparameterized for inference (timm.utils.reparameterize_model)"),
    _timm("efficientformer_l1", "hybrid", "meta-former, pooling mixer, attention in the last stage"),
    _timm("resnet18d", "cnn", "deep stem, avg-pool downsample"),
    _timm("regnetx_002", "cnn", "grouped conv"),
    _timm("deit_tiny_patch16_224", "vision transformer", "timm's own attention (fused sdpa)"),
    _timm("convnext_atto", "cnn", "7x7 depthwise, layer norm"),
    _timm("mobilenetv4_conv_small", "mobile cnn", "universal inverted bottleneck"),
    _hf("bert", "encoder", b.bert, _TOKENS, _DEFAULTS),
    _hf("distilbert", "encoder", b.distilbert, _TOKENS, _DEFAULTS),
    _hf("vit", "vision transformer", b.hf_vit, functools.partial(b.image, 32), _DEFAULTS + "; 32x32, patch 4"),
    _hf("clip_vision", "vision transformer", b.clip_vision, functools.partial(b.image, 32), _DEFAULTS + "; 32x32, patch 4"),
    _hf("whisper_encoder", "audio encoder", b.whisper_encoder, b.mel_features, _DEFAULTS + "; 16 mel bins, 64 frames"),
    _hf("t5_encoder", "encoder", b.t5_encoder, _TOKENS, _DEFAULTS),
    _hf("bart", "encoder-decoder", b.bart, _TOKENS, _DEFAULTS + "; decoder inputs shifted from input_ids"),
    _hf("gpt2", "decoder", b.gpt2, _TOKENS, _LM),
    _hf("llama", "decoder", b.llama, _TOKENS, _LM),
    _hf("qwen2", "decoder", b.qwen2, _TOKENS, _LM),
    _hf("mistral", "decoder", b.mistral, _TOKENS, _LM),
)

MODELS: dict[str, ZooModel] = {entry.name: entry for entry in ENTRIES}

#: Quick real models of each library that pass fp32 today, a raw transformers encoder
#: (outputs by key) and a causal LM (the states recipe, timed as a fresh prefill) among
#: them (tests/zoo/test_subset.py runs them in CI through the plugin's default path;
#: docs/zoo.md has their times).
CI_SUBSET: tuple[str, ...] = (
    "shufflenet_v2_x0_5", "mobilenet_v3_small", "regnet_y_400mf", "timm/convnext_atto",
    "hf/bert", "hf/llama",
)  # fmt: skip


def get(name: str) -> ZooModel:
    """The entry called ``name``; a KeyError names the known ones."""
    try:
        return MODELS[name]
    except KeyError:
        raise KeyError(f"no zoo model {name!r}; known: {', '.join(MODELS)}") from None


def select(names: list[str] | None = None, libraries: list[str] | None = None) -> list[ZooModel]:
    """Entries by name (in the order given) or by library; all of them when neither is given."""
    if names:
        return [get(name) for name in names]
    if libraries:
        unknown = sorted(set(libraries) - set(LIBRARIES))
        if unknown:
            raise KeyError(f"unknown libraries {unknown}; known: {', '.join(LIBRARIES)}")
        return [entry for entry in ENTRIES if entry.library in libraries]
    return list(ENTRIES)


#: Seconds each model took to build in this process (the collector reports them).
_BUILD_SECONDS: dict[str, float] = {}


@functools.cache
def _built(name: str) -> Any:
    start = time.perf_counter()
    model = get(name).build()
    _BUILD_SECONDS[name] = round(time.perf_counter() - start, 3)
    return model


def build_seconds() -> dict[str, float]:
    """Seconds each model built in this process took (builder and calibration)."""
    return dict(_BUILD_SECONDS)
