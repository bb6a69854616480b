"""A mixed pass/fail project for the CI-output tests, and how to run pytest on it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from ..complex_div_source import COMPLEX_DIV_SOURCE

COMPLEX = (
    "import pytest\nimport torch\nfrom pytest_coreml_parity import assert_parity\n"
    + COMPLEX_DIV_SOURCE
    + '''

def bad_inputs():
    a = torch.randn(8, 4)
    a[3] = torch.tensor([300.0, 1.0, 300.0, 1.0])
    return a


@pytest.mark.coreml(precisions=["fp16"])
def test_parity(coreml_model):
    assert_parity(coreml_model, bad_inputs())


def test_healthy(coreml_model, example_inputs):
    assert_parity(coreml_model, *example_inputs)


@pytest.mark.skip(reason="not today")
def test_skipped(coreml_model, example_inputs):
    assert_parity(coreml_model, *example_inputs)


def test_plain():
    assert 1 + 1 == 2
'''
)

#: Held out: a model none of the diagnosis code was written against. x * x overflows
#: fp16 at |x| = 400 (160000 > 65504).
NORM = '''import pytest
import torch
from pytest_coreml_parity import assert_parity


class Norm(torch.nn.Module):
    def forward(self, x):
        return x / torch.sqrt((x * x).sum(-1, keepdim=True))


@pytest.fixture
def torch_model():
    return Norm().eval()


@pytest.fixture
def example_inputs():
    return (torch.linspace(-2.0, 2.0, 12).reshape(3, 4),)


@pytest.mark.coreml(precisions=["fp16"])
def test_norm_large(coreml_model):
    x = torch.linspace(-2.0, 2.0, 12).reshape(3, 4)
    x[1] = torch.tensor([400.0, -3.0, 2.0, 1.0])
    assert_parity(coreml_model, x)
'''

NORM_LINE = "return x / torch.sqrt((x * x).sum(-1, keepdim=True))"

INI = (
    "[pytest]\nfilterwarnings =\n    error\n    ignore::DeprecationWarning\n"
    "    ignore::FutureWarning\n    ignore:.*has not been tested with coremltools.*\n"
    "    ignore:Implicitly cleaning up <TemporaryDirectory:ResourceWarning\n"
    "coreml_backend = emulator\n"
)


def make_project(path: Path, cache: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "test_complex.py").write_text(COMPLEX)
    (path / "test_norm.py").write_text(NORM)
    (path / "pytest.ini").write_text(INI + f"coreml_cache_dir = {cache}\n")
    return path


def run(path: Path, args: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    """``python -m pytest ARGS`` in ``path`` with this checkout's package first."""
    src = str(Path(__file__).resolve().parents[2] / "src")
    environ = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")]), **env}
    environ.pop("PYTEST_ADDOPTS", None)
    return subprocess.run(
        [sys.executable, "-m", "pytest", *args],
        cwd=path, env=environ, capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
