"""Diagnosis converts only through convert.convert_model, with the test's own options."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
import torch

from pytest_coreml_parity.convert import ConversionOptions
from pytest_coreml_parity.diagnose import subject as subject_module
from pytest_coreml_parity.diagnose.subject import ModelUnderTest, Subject


@dataclasses.dataclass
class FakeModel:
    torch_model: Any
    example_inputs: tuple[Any, ...]
    options: ConversionOptions
    mlmodel: Any
    precision: str = "fp16"
    rtol: Any = None
    atol: Any = None
    search_fix: bool = False


def test_the_tests_own_program_is_used_and_siblings_keep_its_options(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[ConversionOptions] = []

    def fake_convert(torch_model: Any, example_inputs: Any, options: ConversionOptions) -> str:
        calls.append(options)
        return f"converted {options.precision} {sorted(options.fp32_ops or ())}"

    monkeypatch.setattr(subject_module, "convert_model", fake_convert)
    options = ConversionOptions(
        precision="fp16", target="iOS17", input_dtypes="fp32", input_names=("a",), use_export=True
    )
    model: ModelUnderTest = FakeModel(torch.nn.ReLU(), (torch.ones(2),), options, mlmodel="the test's own")
    subject = Subject.from_model(model)
    assert subject.model("fp16") == "the test's own" and subject.conversions == 0
    assert subject.model("fp32") == "converted fp32 []"
    assert subject.model("fp16", frozenset({"8"})) == "converted fp16 ['8']"
    assert subject.model("fp32") == "converted fp32 []" and subject.conversions == 2  # converted once
    assert calls == [
        dataclasses.replace(options, precision="fp32", fp32_ops=None),
        dataclasses.replace(options, fp32_ops=frozenset({"8"})),
    ]
