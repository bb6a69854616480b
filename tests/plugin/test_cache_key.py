"""A sound cache key: change anything forward reads and the model re-converts (and passes).

Each scenario changes something the old key (class source files + state_dict) could
not see, so with that key the second run served the stale conversion from disk and
failed both precisions.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

MODEL_DEF = '''
import torch

from helpers import act


class Model(torch.nn.Module):
    def __init__(self, scale=1.0):
        super().__init__()
        self.scale = scale
        self.register_buffer("offset", torch.zeros(3), persistent=False)

    def forward(self, x):
        return act(x) * self.scale + self.offset
'''

HELPERS = '''
def act(x):
    return x * 2.0
'''

CONFTEST = '''
import pytest
import torch

from model_def import Model


@pytest.fixture
def torch_model():
    model = Model(scale=1.0)
    # EDIT
    return model.eval()


@pytest.fixture
def example_inputs():
    return (torch.linspace(-1.0, 1.0, 6).reshape(2, 3),)
'''

TEST = '''
from pytest_coreml_parity import assert_parity


def test_parity(coreml_model, example_inputs):
    assert_parity(coreml_model, *example_inputs)
'''

Run = Callable[..., pytest.RunResult]

FIRST = "coreml-parity: backend emulator; 2 converted, 0 from disk cache, 0 reused in session, 0 failed*"


def _write(pytester: pytest.Pytester, conftest: str = CONFTEST, helpers: str = HELPERS) -> None:
    for cached in pytester.path.rglob("__pycache__"):
        shutil.rmtree(cached)  # same-size edits within a second must not reuse stale bytecode
    pytester.makepyfile(model_def=MODEL_DEF, helpers=helpers, test_model=TEST)
    pytester.makeconftest(conftest)


@pytest.mark.parametrize(
    ("conftest", "helpers"),
    [
        pytest.param(CONFTEST.replace("# EDIT", "model.scale = 3.0"), HELPERS, id="plain-attribute"),
        pytest.param(CONFTEST.replace("Model(scale=1.0)", "Model(scale=3.0)"), HELPERS, id="constructor-argument"),
        pytest.param(CONFTEST, HELPERS.replace("x * 2.0", "x * 5.0"), id="helper-in-another-module"),
        pytest.param(CONFTEST.replace("# EDIT", "model.offset.fill_(3.0)"), HELPERS, id="non-persistent-buffer"),
    ],
)
def test_a_change_forward_reads_reconverts_and_passes(
    pytester: pytest.Pytester, run: Run, tmp_path: Path, conftest: str, helpers: str
) -> None:
    cache = f"--coreml-cache-dir={tmp_path / 'cache'}"
    _write(pytester)
    first = run(cache)
    first.assert_outcomes(passed=2)
    first.stdout.fnmatch_lines([FIRST])
    _write(pytester, conftest, helpers)
    second = run(cache)
    second.assert_outcomes(passed=2)
    second.stdout.fnmatch_lines([FIRST])


def test_an_unchanged_model_hits_the_disk_cache_from_a_new_process_and_a_moved_checkout(
    pytester: pytest.Pytester, run: Run, tmp_path: Path
) -> None:
    cache = f"--coreml-cache-dir={tmp_path / 'cache'}"
    _write(pytester)
    run(cache).stdout.fnmatch_lines([FIRST])
    moved = pytester.path / "moved"
    moved.mkdir()
    for name in ("conftest.py", "model_def.py", "helpers.py", "test_model.py"):
        (pytester.path / name).rename(moved / name)
    second = pytester.runpytest_subprocess("-p", "no:cacheprovider", cache, "moved")
    second.assert_outcomes(passed=2)
    second.stdout.fnmatch_lines(
        ["coreml-parity: backend emulator; 0 converted, 2 from disk cache, 0 reused in session, 0 failed*"]
    )
