"""Shared pieces for the plugin's pytester tests.

Every test runs real conversions and the real emulator. To stay fast, runs
that do not test caching share one disk cache across the session (legitimate:
the cache key covers model code, weights, inputs, options and versions).
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

EXAMPLE_DIR = Path(__file__).resolve().parents[2] / "examples" / "complex_division"

#: A tiny model that converts fast; used wherever the model itself does not matter.
SCALE_CONFTEST = '''
import pytest
import torch


class Scale(torch.nn.Module):
    def forward(self, x):
        return torch.relu(x) * 2.0


@pytest.fixture
def torch_model():
    return Scale().eval()


@pytest.fixture
def example_inputs():
    return (torch.linspace(-1.0, 1.0, 6).reshape(2, 3),)
'''


def _warm_up() -> None:
    """Import everything a conversion and a run touch, in this process, before pytester runs.

    In-process pytester runs drop modules first imported during the run; a second
    import of torch's or coremltools' native extensions crashes the interpreter.
    Converting and running one model here puts them all in the snapshot.
    """
    import hypothesis.extra.numpy  # noqa: F401
    import torch

    import pytest_coreml_parity.compare
    import pytest_coreml_parity.strategies
    from pytest_coreml_parity.cache import ConversionCache
    from pytest_coreml_parity.model import CoreMLModel, ModelSettings, Runtime
    from pytest_coreml_parity.settings import Settings

    with contextlib.suppress(ImportError):
        import pytest_coreml_parity.diagnose  # noqa: F401
    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.ReLU())
    for export in (False, True):
        slot = CoreMLModel(
            ModelSettings(Settings(export=export), precision="fp16"),
            Runtime(ConversionCache(None), "emulator"),
        )
        slot.bind(model, (torch.ones(1, 3),))


_warm_up()


@pytest.fixture(scope="session")
def shared_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("coreml-cache")


@pytest.fixture
def run(pytester: pytest.Pytester, shared_cache: Path):
    """Run pytest in-process with the shared disk cache (unless a cache dir is given)."""

    def _run(*args: str) -> pytest.RunResult:
        extra = [] if any(a.startswith("--coreml-cache-dir") for a in args) else [
            f"--coreml-cache-dir={shared_cache}"
        ]
        return pytester.runpytest("-p", "no:cacheprovider", *extra, *args)

    return _run


def copy_example(pytester: pytest.Pytester) -> None:
    """Put the shipped complex-division example into the pytester directory."""
    for name in ("conftest.py", "test_complex_div.py"):
        pytester.path.joinpath(name).write_text((EXAMPLE_DIR / name).read_text())
