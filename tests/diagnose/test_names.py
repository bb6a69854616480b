"""Op-name mapping between the fp16 program, the fp32 program and the op_selector."""

from __future__ import annotations

from pytest_coreml_parity.diagnose.names import fp32_name, sanitize, selector_names


def test_sanitize_follows_coremltools():
    assert sanitize("8") == "op_8"
    assert sanitize("input.1") == "input_1"
    assert sanitize("den") == "den"


def test_fp32_name_strips_the_fp16_suffix():
    assert fp32_name("op_8_cast_fp16") == "op_8"
    assert fp32_name("cast_1") == "cast_1"


def test_selector_names_use_the_torch_scope_when_it_pins_the_name():
    scopes = {"input_1_cast_fp16": (("Linear", "linear"), ("proj", "input.1"))}
    assert selector_names("input_1_cast_fp16", scopes) == ("input.1",)


def test_selector_names_without_scope_offer_every_plausible_original():
    assert selector_names("op_8_cast_fp16", {}) == ("op_8", "8")
    assert selector_names("den_cast_fp16", {}) == ("den",)
