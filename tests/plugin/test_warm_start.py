"""A warm run (every model from the disk cache) never imports coremltools.

Two whole pytest processes on one disk cache: the first converts (and so imports
coremltools), the second reads both models from the cache. A conftest hook writes the
names in ``sys.modules`` when each session ends; the second run's list has no
coremltools, torchao or scikit-learn module, and the tests passed, so the emulator ran the
cached programs. ``assert_parity`` outside a ``@given`` test does not import hypothesis.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

#: A small softmax net and its fixtures (conftest text; test_per_call_costs reuses it).
MODEL_FIXTURES = '''

class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.linear = torch.nn.Linear(8, 4)

    def forward(self, x):
        return torch.softmax(self.linear(x) * 2.0, dim=-1)


@pytest.fixture
def torch_model():
    return Net().eval()


@pytest.fixture
def example_inputs():
    return (torch.linspace(-1.0, 1.0, 16).reshape(2, 8),)
'''

CONFTEST = '''
import json, os, sys
import pytest
import torch
''' + MODEL_FIXTURES + '''


def pytest_sessionfinish(session):
    with open(os.environ["MODULES_FILE"], "w") as handle:
        json.dump(sorted(sys.modules), handle)
'''

TEST = '''
from hypothesis import given, settings, strategies as st
from pytest_coreml_parity import assert_parity
from pytest_coreml_parity.strategies import model_inputs


def test_parity(coreml_model, example_inputs):
    assert_parity(coreml_model, *example_inputs)


@settings(max_examples=3, deadline=None)
@given(data=st.data())
def test_fuzz(coreml_model, data):
    inputs = data.draw(model_inputs(coreml_model), label="inputs")
    assert coreml_model(*inputs).shape == (2, 4)
'''


#: What a warm run must not import: coremltools, and what its ``_deps`` would pull in.
HEAVY = ("coremltools", "torchao", "sklearn")


def _heavy_modules(path: Path) -> list[str]:
    return [m for m in json.loads(path.read_text()) if m.split(".")[0] in HEAVY]


def test_a_warm_run_imports_no_coremltools(
    pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_model=TEST)
    cache = f"--coreml-cache-dir={tmp_path / 'cache'}"
    args = ("-p", "no:cacheprovider", "-n", "0", cache, "--coreml-precisions=fp32,fp16")

    cold_modules = tmp_path / "cold.json"
    monkeypatch.setenv("MODULES_FILE", str(cold_modules))
    cold = pytester.runpytest_subprocess(*args)
    cold.assert_outcomes(passed=4)
    cold.stdout.fnmatch_lines(["coreml-parity: backend emulator; 2 converted, 0 from disk cache*"])
    assert "coremltools" in json.loads(cold_modules.read_text())  # the check can fail

    warm_modules = tmp_path / "warm.json"
    monkeypatch.setenv("MODULES_FILE", str(warm_modules))
    warm = pytester.runpytest_subprocess(*args)
    warm.assert_outcomes(passed=4)
    warm.stdout.fnmatch_lines(["coreml-parity: backend emulator; 0 converted, 2 from disk cache*"])
    assert _heavy_modules(warm_modules) == []


SCRIPT = """
import sys, torch
from pytest_coreml_parity.cache import ConversionCache
from pytest_coreml_parity.compare import assert_parity
from pytest_coreml_parity.model import CoreMLModel, ModelSettings, Runtime

model = CoreMLModel(ModelSettings(precision="fp16"), Runtime(ConversionCache(None), "emulator"))
x = torch.linspace(-1.0, 1.0, 8).reshape(2, 4)
model.bind(torch.nn.Sequential(torch.nn.Linear(4, 3)).eval(), (x,))
assert model.guide
assert_parity(model, x)
print("hypothesis" in sys.modules)
"""


def test_assert_parity_outside_given_does_not_import_hypothesis() -> None:
    """Guidance asks hypothesis whether a ``@given`` test runs; with hypothesis not
    imported, none does, and importing it (1-2 s) is skipped."""
    import os
    import subprocess
    import sys

    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "False"


LM_CONFTEST = """
import json, os, sys
import pytest
import torch

from tests.real_models import tiny, token_ids


@pytest.fixture
def torch_model():
    return tiny("llama")


@pytest.fixture
def example_inputs():
    return (token_ids(),)


def pytest_sessionfinish(session):
    with open(os.environ["MODULES_FILE"], "w") as handle:
        json.dump(sorted(sys.modules), handle)
"""

LM_TEST = """
from pytest_coreml_parity import assert_parity


def test_parity(coreml_model, example_inputs):
    assert coreml_model.decoder is not None  # the default KV-cache recipe's wrapper
    assert_parity(coreml_model, *example_inputs)
"""


def test_a_warm_run_of_a_causal_lm_imports_no_coremltools(
    pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The decoder recipe's ``ct.convert`` types (flexible ``RangeDim`` inputs, states) are
    keyed as data and built only when converting. transformers itself imports torchao
    when it is installed, so only coremltools and scikit-learn are checked here."""
    root = str(Path(__file__).resolve().parents[2])  # for tests.real_models
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))
    )
    pytester.makeconftest(LM_CONFTEST)
    pytester.makepyfile(test_lm=LM_TEST)
    args = ("-p", "no:cacheprovider", "-n", "0", f"--coreml-cache-dir={tmp_path / 'cache'}")
    for run, expected in (
        ("cold", "1 converted, 0 from disk cache"),
        ("warm", "0 converted, 1 from disk cache"),
    ):
        modules = tmp_path / f"{run}.json"
        monkeypatch.setenv("MODULES_FILE", str(modules))
        result = pytester.runpytest_subprocess(*args, "--coreml-precisions=fp16")
        result.assert_outcomes(passed=1)
        result.stdout.fnmatch_lines([f"coreml-parity: backend emulator; {expected}*"])
        imported = {m.split(".")[0] for m in json.loads(modules.read_text())}
        assert ("coremltools" in imported) == (run == "cold"), (
            run,
            sorted(imported & {"coremltools"}),
        )
        if run == "warm":
            assert "sklearn" not in imported
