"""Per-profile verdicts on real conversions: an fp16-typed output past 65504 fails under
every profile, float32 included, and the conclusion says it is the output's fp16 type (not
"not an fp16 effect"); with fp32 I/O the float32 profile passes."""

from __future__ import annotations

import numpy as np
import torch

from pytest_coreml_parity.convert import ConversionOptions, convert_model
from pytest_coreml_parity.diagnose.profiles import conclusion, profile_verdicts
from pytest_coreml_parity.verdict import Gates


class Scale(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 3000.0 + 1.0


def _verdicts(input_dtypes: str) -> list:  # type: ignore[type-arg]
    x = torch.full((2, 4), 30.0)
    mlmodel = convert_model(Scale().eval(), (x,), ConversionOptions(precision="fp16", input_dtypes=input_dtypes))
    name = next(iter(mlmodel.get_spec().description.input)).name
    output = next(iter(mlmodel.get_spec().description.output)).name
    dtype = np.float16 if input_dtypes == "fp16" else np.float32
    expected = [(Scale()(x)).numpy()]
    return profile_verdicts(mlmodel, {name: x.numpy().astype(dtype)}, [output], expected, Gates(rtol=0.01, atol=1e-5))


def test_an_fp16_output_past_65504_fails_every_profile_and_says_why() -> None:
    verdicts = _verdicts("fp16")
    assert [v.passed for v in verdicts] == [False, False, False]
    assert all(v.storage_overflow and v.storage_overflow[0][1] == 90001.0 for v in verdicts)
    text = conclusion(verdicts)
    assert "is typed fp16 in the program" in text and "90001" in text and "not an fp16 effect" not in text
    assert verdicts[0].to_dict()["fp16_outputs_past_max"][0]["torch_max_abs"] == 90001.0


def test_with_fp32_outputs_the_float32_profile_passes() -> None:
    verdicts = _verdicts("fp32")
    by = {v.profile: v for v in verdicts}
    assert by["float32"].passed and not by["typed"].passed
    assert not any(v.storage_overflow for v in verdicts)
    assert conclusion(verdicts).startswith("fp16 storage causes it")
