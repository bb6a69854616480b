"""The zoo's table: every model the issue names, unique names, and selection."""

from __future__ import annotations

import pytest
from tools.zoo.registry import CI_SUBSET, ENTRIES, LIBRARIES, MODELS, get, select
from tools.zoo.testfile import file_name, render

pytestmark = pytest.mark.zoo

TORCHVISION = {
    "resnet18", "mobilenet_v3_small", "efficientnet_b0", "convnext_tiny", "regnet_y_400mf",
    "shufflenet_v2_x0_5", "vit_b_16", "swin_t", "deeplabv3_mobilenet_v3_large",
    "ssdlite320_mobilenet_v3_large",
}  # fmt: skip
TRANSFORMERS = {
    "hf/bert", "hf/distilbert", "hf/vit", "hf/clip_vision", "hf/whisper_encoder", "hf/t5_encoder",
    "hf/bart", "hf/gpt2", "hf/llama", "hf/qwen2", "hf/mistral",
}  # fmt: skip


def test_the_zoo_holds_every_model_named_and_five_timm_families() -> None:
    assert len(MODELS) == len(ENTRIES)
    assert set(MODELS) >= TORCHVISION
    assert set(MODELS) >= TRANSFORMERS
    timm = [entry for entry in ENTRIES if entry.library == "timm"]
    assert len(timm) >= 5
    assert {entry.library for entry in ENTRIES} == set(LIBRARIES)
    assert set(CI_SUBSET) <= set(MODELS)


def test_selection_by_name_and_library() -> None:
    assert [e.name for e in select(["hf/gpt2", "resnet18"])] == ["hf/gpt2", "resnet18"]
    assert {e.library for e in select(libraries=["timm"])} == {"timm"}
    with pytest.raises(KeyError, match="no zoo model 'resnet19'; known: resnet18"):
        get("resnet19")
    with pytest.raises(KeyError, match="unknown libraries"):
        select(libraries=["keras"])


def test_the_generated_test_file_is_the_users_plain_file() -> None:
    text = render("timm/levit_128s")
    assert file_name("timm/levit_128s") == "test_timm_levit_128s.py"
    assert "def test_parity(coreml_model, example_inputs):\n    assert_parity(coreml_model, *example_inputs)" in text
    assert "get('timm/levit_128s')" in text
    compile(text, "test_timm_levit_128s.py", "exec")


def test_a_partial_run_must_name_where_it_writes(capsys: pytest.CaptureFixture[str]) -> None:
    from tools.zoo.__main__ import main

    with pytest.raises(SystemExit) as exit_info:
        main(["run", "--models", "resnet18"])
    assert exit_info.value.code == 2
    assert "a partial run would replace the whole zoo table" in capsys.readouterr().err
    assert main(["list"]) == 0
    assert "hf/llama" in capsys.readouterr().out
