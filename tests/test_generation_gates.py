"""assert_generation's gates are rows of the gate table, set like every other gate:
argument > marker > command line > ini > the precision's preset, one rule for a value,
and a bad value names its source.

Resolution reads a real ``CoreMLModel`` made from a real resolved ``Settings`` record
(no conversion is needed to resolve a gate); ``tests/plugin/test_generation_gates.py``
runs the same precedence end to end on a tiny Llama.
"""

from __future__ import annotations

from typing import Any

import pytest

from pytest_coreml_parity.decoders.generation import (
    DEFAULT_PRESET,
    GENERATION_PRESETS,
    assert_generation,
    generation_gates,
)
from pytest_coreml_parity.errors import SettingError
from pytest_coreml_parity.model import CoreMLModel
from pytest_coreml_parity.model_settings import ModelSettings
from pytest_coreml_parity.settings import Settings, apply_marker, resolve_session


def _session(cli: dict[str, Any] | None = None, ini: dict[str, Any] | None = None) -> Settings:
    return resolve_session(
        lambda name: (cli or {}).get(name), lambda key: (ini or {}).get(key), "pytest.ini"
    )


def _model(settings: Settings, precision: str = "fp16") -> CoreMLModel:
    return CoreMLModel(ModelSettings(settings, precision=precision), None)


def test_each_source_sets_a_generation_gate_with_the_one_precedence() -> None:
    preset = GENERATION_PRESETS["fp16"]
    assert generation_gates(_model(Settings()), {}) == preset
    ini = _session(ini={"coreml_min_token_match": "0.5"})
    assert generation_gates(_model(ini), {})["min_token_match"] == 0.5
    cli = _session(cli={"min_token_match": "0.7"}, ini={"coreml_min_token_match": "0.5"})
    assert generation_gates(_model(cli), {})["min_token_match"] == 0.7
    assert cli.origins["min_token_match"] == "--coreml-min-token-match"
    marker = apply_marker(cli, (), [{"min_token_match": 0.8}], "t.py::test")
    assert generation_gates(_model(marker), {})["min_token_match"] == 0.8
    assert generation_gates(_model(marker), {"min_token_match": 0.9})["min_token_match"] == 0.9
    # the other gates keep the preset; each gate resolves on its own
    assert generation_gates(_model(marker), {})["min_logits_cosine"] == preset["min_logits_cosine"]


def test_per_precision_values_off_and_the_compressed_preset() -> None:
    settings = _session(cli={"min_logits_cosine": "fp16=0.99,fp32=off"})
    assert generation_gates(_model(settings, "fp16"), {})["min_logits_cosine"] == 0.99
    assert generation_gates(_model(settings, "fp32"), {})["min_logits_cosine"] == 0.0  # off
    assert generation_gates(_model(Settings(), "fp32"), {"min_layer_cosine": "off"})["min_layer_cosine"] == 0.0
    assert generation_gates(_model(Settings(), "int8"), {}) == DEFAULT_PRESET


def test_a_generation_gate_is_no_parity_gate() -> None:
    settings = _session(cli={"min_token_match": "0.5", "min_snr": "30"})
    model = _model(settings)
    assert model.gates == {"min_token_match": 0.5, "min_snr": 30.0}  # one mapping
    from pytest_coreml_parity.compare import gates_for

    resolved = gates_for("fp16", {}, model=model)
    assert resolved.gates.min_snr == 30.0
    assert "min_token_match" not in resolved.origins


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ({"cli": {"min_token_match": "1.5"}}, r"^--coreml-min-token-match: min_token_match must be a number in \[0, 1\]"),
        (
            {"ini": {"coreml_min_logits_cosine": "x"}},
            r"^pytest.ini \[coreml_min_logits_cosine\]: min_logits_cosine must be a number in \[0, 1\]",
        ),
        ({"cli": {"min_layer_cosine": "fp61=0.9"}}, r"^--coreml-min-layer-cosine: unknown precision 'fp61'"),
    ],
)
def test_a_bad_configured_value_names_its_source(source: dict[str, Any], message: str) -> None:
    with pytest.raises(SettingError, match=message):
        _session(**source)


def test_a_bad_marker_value_names_the_marker() -> None:
    with pytest.raises(SettingError, match=r"^@pytest.mark.coreml in t.py::test: min_token_match: min_token_match must be a number in \[0, 1\]"):
        apply_marker(Settings(), (), [{"min_token_match": -0.5}], "t.py::test")


def test_a_bad_argument_names_the_argument_before_anything_runs() -> None:
    model = _model(Settings())  # not bound to a decoder: the gate fails first
    with pytest.raises(SettingError, match=r"^assert_generation\(min_token_match=\.\.\.\): min_token_match must be a number in \[0, 1\]"):
        assert_generation(model, [1, 2, 3], min_token_match=2)
    with pytest.raises(SettingError, match=r"^assert_generation\(min_logits_cosine=\.\.\.\): .* got '0.9'"):
        assert_generation(model, [1, 2, 3], min_logits_cosine="0.9")  # an argument is a number
