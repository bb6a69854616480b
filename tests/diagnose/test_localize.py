"""Localization on real conversions: the op that broke is named, with ranges and source."""

from __future__ import annotations

import math

import numpy as np

from pytest_coreml_parity.diagnose import localize_models
from pytest_coreml_parity.diagnose.localize import FP16_MAX

from ..emulator.support import convert
from .models import complex_div


def test_complex_div_names_the_overflowing_mul(localized):
    loc = localized("complex_div")
    bad = loc.first_non_finite
    assert bad is not None and bad.op_type == "mul"
    assert bad.name.endswith("_cast_fp16") and bad.fp32_name == bad.name[: -len("_cast_fp16")]
    assert "rb * rb" in (bad.source or "")
    assert "ComplexDiv.forward" in (bad.source or "")
    assert [r.max_abs for r in bad.inputs] == [300.0, 300.0]
    assert bad.output.non_finite == 1 and bad.output.nan == 0
    assert bad.fp32_output is not None and bad.fp32_output.max_abs == 90000.0
    assert loc.first_error is not None and loc.first_error.name == bad.name
    text = loc.text()
    assert f"mul {bad.name} (ComplexDiv.forward" in text
    assert "max |x| = 300" in text and "output inf in 1 of 8" in text and "fp16 max 65504" in text


def test_complex_div_profile_jumps_at_the_culprit(localized):
    loc = localized("complex_div")
    errors = {p.name: p.rel_error for p in loc.profile}
    culprit = loc.first_non_finite.name
    assert errors[culprit] == math.inf
    before = [p for p in loc.profile if p.index < loc.first_non_finite.index and p.rel_error is not None]
    assert before and all(p.rel_error <= loc.tolerance for p in before)


def test_large_activations_names_the_projection(localized):
    loc = localized("large_activations")
    bad = loc.first_non_finite
    assert bad is not None and bad.op_type == "linear"
    assert (bad.source or "").startswith("proj: Linear.forward")
    assert bad.fp32_output.max_abs > FP16_MAX
    norm = next(p for p in loc.profile if p.op_type == "layer_norm")
    assert norm.non_finite and norm.rel_error == math.inf  # the norm turns inf into nan


def test_masked_attention_blames_the_fill_value(localized):
    loc = localized("masked_attention")
    bad = loc.first_non_finite
    assert bad is not None and bad.op_type == "select"
    const = [r for r in bad.inputs if r.const]
    assert const and const[0].non_finite == const[0].size  # finfo.min stored as fp16: -inf
    assert "masked_fill" in (bad.source or "")
    softmax = next(p for p in loc.profile if p.op_type == "softmax")
    assert softmax.non_finite  # the fully masked row


def test_healthy_model_stays_silent(localized):
    loc = localized("healthy")
    assert loc.healthy
    assert loc.first_non_finite is None and loc.first_error is None
    compared = [p for p in loc.profile if p.rel_error is not None]
    assert len(compared) >= 3 and all(p.rel_error < loc.tolerance for p in compared)


def test_localize_models_takes_an_mlmodel_pair():
    model, examples, failing = complex_div()
    m16 = convert(model, examples, precision="fp16")
    m32 = convert(model, examples, precision="fp32")
    loc = localize_models(m16, m32, [x.numpy() for x in failing], root_class="ComplexDiv")
    bad = loc.first_non_finite
    assert bad is not None and bad.op_type == "mul"
    assert np.isinf(bad.rel_error)
    # Without the trace that was converted, the location is the torch op, not a code line.
    assert bad.source is not None and bad.source.startswith("ComplexDiv, torch mul ")


def test_to_dict_is_json_ready(localized):
    import json

    data = localized("complex_div").to_dict()
    text = json.dumps(data, allow_nan=False)
    assert '"healthy": false' in text and '"rel_error": "inf"' in text


def test_fp16_input_overflow_is_named_before_any_op():
    """With fp16 I/O (iOS16+), 70000 is inf before the first op runs: blame the input."""
    model, examples, _failing = complex_div()
    m16 = convert(model, examples, precision="fp16", target="iOS16")
    m32 = convert(model, examples, precision="fp32", target="iOS16")
    a = np.ones((8, 4), np.float32)
    a[2, 3] = 70000.0
    loc = localize_models(m16, m32, [a], root_class="ComplexDiv")
    assert not loc.healthy
    (finding,) = loc.input_overflow
    assert finding.name == "x0" and finding.given.max_abs == 70000.0
    assert finding.stored.non_finite == 1
    text = loc.text()
    assert text.startswith("input 'x0' overflows fp16 on the way in: given max |x| = 70000 > 65504")
    assert "fp32 inputs" in text


def test_fp32_inputs_do_not_report_input_overflow():
    """At iOS15 the inputs are fp32 and the program casts: the cast op is blamed instead."""
    model, examples, _failing = complex_div()
    m16 = convert(model, examples, precision="fp16", target="iOS15")
    m32 = convert(model, examples, precision="fp32", target="iOS15")
    a = np.ones((8, 4), np.float32)
    a[2, 3] = 70000.0
    loc = localize_models(m16, m32, [a], root_class="ComplexDiv")
    assert loc.input_overflow == ()
    assert loc.first_non_finite is not None and loc.first_non_finite.op_type == "cast"
