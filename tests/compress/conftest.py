"""Shared pieces for the compressed-precision tests: real conversions, real emulator."""

from __future__ import annotations

from pathlib import Path

import pytest


def _warm_up() -> None:
    """Import what palettization (scikit-learn's k-means) and calibration touch, in this
    process, before pytester runs in-process (a second import of native extensions crashes)."""
    import torch

    import pytest_coreml_parity.compare
    import pytest_coreml_parity.diagnose  # noqa: F401
    from pytest_coreml_parity.convert import ConversionOptions, convert_model

    model = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU()).eval()
    for precision in ("palettize4", "w8a8"):
        convert_model(model, (torch.ones(2, 64),), ConversionOptions(precision=precision))


_warm_up()


@pytest.fixture(scope="session")
def shared_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("coreml-compress-cache")


@pytest.fixture
def run(pytester: pytest.Pytester, shared_cache: Path):
    """Run pytest in-process on the pytester directory with a session-shared disk cache."""

    def _run(*args: str) -> pytest.RunResult:
        return pytester.runpytest("-p", "no:cacheprovider", f"--coreml-cache-dir={shared_cache}", *args)

    return _run
