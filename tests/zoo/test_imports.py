"""torchvision, transformers and timm import in the suite's environment (tools/zoo/torchvision_guard.py).

Subprocesses: a fresh interpreter is what a user's session is, and importing these
libraries into the suite's own process would put them into every later test.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from tools.zoo.run import REPO, subprocess_env
from tools.zoo.torchvision_guard import extension_loads

pytestmark = pytest.mark.zoo

GUARDED = """
from tools.zoo.torchvision_guard import ensure_torchvision_importable
ensure_torchvision_importable()
import torchvision, transformers, timm
import torch
model = torchvision.models.resnet18(weights=None).eval()
assert model(torch.zeros(1, 3, 32, 32)).shape == (1, 1000)
print(torchvision.__version__, transformers.__version__, timm.__version__)
"""


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=subprocess_env(), capture_output=True, text=True, timeout=300
    )


def test_zoo_libraries_import_after_the_guard() -> None:
    done = _python(GUARDED)
    assert done.returncode == 0, done.stderr[-2000:]
    assert len(done.stdout.split()) == 3


def test_the_guard_is_what_makes_torchvision_import() -> None:
    """Where torchvision's compiled ops don't load (PyPI's CUDA wheel beside CPU torch), a plain
    import fails with the error the guard exists for; where they load, the guard does nothing."""
    if extension_loads():
        done = _python("from tools.zoo.torchvision_guard import ensure_torchvision_importable as e; print(e())")
        assert done.stdout.strip() == "False", done.stderr[-2000:]
        return
    done = _python("import torchvision")
    assert done.returncode != 0
    assert "operator torchvision::nms does not exist" in done.stderr
