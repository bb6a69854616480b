"""The shipped example: complex division converts fine at fp32 and overflows at fp16.

Run it with ``scripts/demo.sh`` (or ``pytest examples/complex_division``):

* ``test_parity[fp32]`` and ``test_parity[fp16]`` pass: unit-scale inputs are fine.
* ``test_large_denominators[fp16]`` fails: values near 300 square to 90000 > 65504, so the
  float16 model returns nan/inf where PyTorch is finite. The failure names the fix.
* ``test_fuzz[fp16]`` fails: hypothesis draws inputs float16 can hold (``model_inputs``
  reads the converted program's inputs), finds the overflow inside the model and shrinks
  it to a readable counterexample with finite inputs, such as one row ``[0, 1, 0, 256]``
  (256² = 65536 > 65504); ``test_fuzz[fp32]`` passes.
"""

from __future__ import annotations

import torch
from hypothesis import given
from hypothesis import strategies as st

from pytest_coreml_parity import assert_finite, assert_parity
from pytest_coreml_parity.strategies import fuzz_settings, model_inputs


def test_parity(coreml_model, example_inputs):
    assert_parity(coreml_model, *example_inputs)


def test_large_denominators(coreml_model):
    generator = torch.Generator().manual_seed(1)
    a = 300.0 * (torch.rand(8, 4, generator=generator) + 0.5)  # physical units, |a|, |b| ~ 150..450
    assert_parity(coreml_model, a)  # fp16: ra·rb and rb² + ib² pass 65504, giving inf/inf = nan


def test_outputs_are_finite(coreml_model, example_inputs):
    assert_finite(coreml_model(*example_inputs))


@fuzz_settings(max_examples=200)  # no deadline, no slow "explain" phase
@given(data=st.data())
def test_fuzz(coreml_model, data):
    inputs = data.draw(model_inputs(coreml_model), label="inputs")
    assert_parity(coreml_model, *inputs)
