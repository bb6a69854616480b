"""Per-call costs of issue 22: lazy failure messages, one plan per model, the MLModel.

Real conversions with real coremltools, the real emulator and real hypothesis runs.
Counting wrappers call through to the real functions (nothing is replaced).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from pytest_coreml_parity import compare
from pytest_coreml_parity.cache import ConversionCache
from pytest_coreml_parity.compare import ParityFailure, assert_parity
from pytest_coreml_parity.emulator.saved import SavedModel
from pytest_coreml_parity.model import CoreMLModel, ModelSettings, Runtime
from tests.plugin.test_warm_start import MODEL_FIXTURES


class Product(torch.nn.Module):
    """x * y * 300: past fp16's 65504 once |x * y| > 218."""

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return x * 300.0 * y


def _bound(cache_dir: Path | None, precision: str = "fp16") -> CoreMLModel:
    model = CoreMLModel(
        ModelSettings(precision=precision),
        Runtime(ConversionCache(cache_dir), "emulator"),
    )
    x = torch.linspace(-1.0, 1.0, 8).reshape(2, 4)
    model.bind(Product().eval(), (x, x))
    return model


def test_a_failure_message_is_rendered_only_when_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hypothesis shrinks through many failing examples; none renders its text but the
    one it reports (rendered once, when hypothesis formats it)."""
    model = _bound(None)
    renders: list[int] = []
    real = compare._parity_message

    def counting(*args: Any) -> str:
        renders.append(1)
        return real(*args)

    monkeypatch.setattr(compare, "_parity_message", counting)
    failures: list[ParityFailure] = []
    arrays = hnp.arrays(np.float32, (2, 4), elements=st.floats(-100, 100, width=32))

    @settings(max_examples=60, derandomize=True, database=None, deadline=None,
              suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(x=arrays, y=arrays)
    def search(x: np.ndarray, y: np.ndarray) -> None:
        try:
            assert_parity(model, x, y)
        except ParityFailure as failure:
            failures.append(failure)
            raise

    with pytest.raises(ParityFailure) as raised:
        search()
    # Generation found it, then shrinking re-ran many failing examples; hypothesis
    # formats only the example it reports: the stored one and its final replay.
    assert len(failures) >= 10
    assert 1 <= len(renders) <= 2
    rendered = len(renders)
    text = str(raised.value)
    assert str(raised.value) == text and len(renders) == rendered  # rendered once, kept
    assert raised.value is failures[-1]
    assert text.startswith("Core ML output 'var_5' does not match PyTorch at fp16 on the emulator backend")
    assert "metrics (fp16 preset):" in text and "inputs (reproduce with coreml_model(*inputs)):" in text
    assert raised.value.args == (text,)
    assert repr(raised.value) == f"ParityFailure({text!r})"


def test_a_pickled_failure_keeps_its_text() -> None:
    """xdist sends failures between processes: pickling renders the text first."""
    import pickle

    model = _bound(None)
    with pytest.raises(ParityFailure) as raised:
        assert_parity(model, np.full((2, 4), 20.0, np.float32), np.full((2, 4), 20.0, np.float32))
    copy = pickle.loads(pickle.dumps(raised.value))
    assert str(copy) == str(raised.value)
    assert "+inf 8" in str(copy)


CONFTEST = '''
import json, os
import pytest
import torch
from pytest_coreml_parity.emulator import Emulator

PLANS = []
_init = Emulator.__init__


def _counting_init(self, *args, **kwargs):
    PLANS.append(1)
    _init(self, *args, **kwargs)


Emulator.__init__ = _counting_init
''' + MODEL_FIXTURES + '''


def pytest_sessionfinish(session):
    with open(os.environ["PLANS_FILE"], "w") as handle:
        json.dump(len(PLANS), handle)
'''

TEST = '''
from pytest_coreml_parity import assert_parity


def test_parity(coreml_model, example_inputs):
    assert_parity(coreml_model, *example_inputs)
    assert_parity(coreml_model, *(x * 2 for x in example_inputs))
'''


@pytest.mark.parametrize("cache", ["cold", "warm"])
def test_one_plan_per_model_with_headroom_and_lint(
    pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cache: str
) -> None:
    """The runner, the headroom recording and the lint share one planned emulator per
    model: two precisions, two calls each, headroom and lint on, two plans."""
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_model=TEST)
    plans = tmp_path / "plans.json"
    monkeypatch.setenv("PLANS_FILE", str(plans))
    args = ("-p", "no:cacheprovider", "-n", "0", f"--coreml-cache-dir={tmp_path / 'cache'}",
            "--coreml-precisions=fp32,fp16", "--coreml-headroom=2", "--coreml-lint=warn")  # fmt: skip
    if cache == "warm":
        pytester.runpytest_subprocess(*args).assert_outcomes(passed=2)
    result = pytester.runpytest_subprocess(*args)
    result.assert_outcomes(passed=2)
    source = "0 converted, 2 from disk cache" if cache == "warm" else "2 converted, 0 from disk cache"
    result.stdout.fnmatch_lines([f"coreml-parity: backend emulator; {source}*"])
    assert json.loads(plans.read_text()) == 2


def test_to_mlmodel_is_coremltools_mlmodel_after_conversion_and_after_a_cache_hit(tmp_path: Path) -> None:
    """``coreml_model.mlmodel`` is coremltools' MLModel after a conversion and a
    SavedModel after a disk-cache hit; ``to_mlmodel()`` is the MLModel in both cases."""
    import coremltools as ct

    converted = _bound(tmp_path)
    assert isinstance(converted.mlmodel, ct.models.MLModel)
    assert converted.to_mlmodel() is converted.mlmodel

    hit = _bound(tmp_path)  # a new session cache on the same disk cache: a disk hit
    assert isinstance(hit.mlmodel, SavedModel)
    mlmodel = hit.to_mlmodel()
    assert isinstance(mlmodel, ct.models.MLModel)
    assert hit.to_mlmodel() is mlmodel
    assert mlmodel.get_spec().description == converted.mlmodel.get_spec().description
