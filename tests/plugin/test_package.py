"""The package stays cheap to import, and the cheap copies of option lists stay in sync."""

from __future__ import annotations

import subprocess
import sys

from pytest_coreml_parity import settings


def test_plugin_import_does_not_load_torch_coremltools_or_numpy() -> None:
    code = (
        "import sys, pytest_coreml_parity.plugin, pytest_coreml_parity as p; "
        "assert callable(p.__getattr__); "
        "print(sorted(m for m in ('torch', 'coremltools', 'numpy') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_targets_and_compute_units_exist_in_coremltools() -> None:
    from pytest_coreml_parity._coremltools import import_coremltools

    ct = import_coremltools()
    assert all(hasattr(ct.target, t) for t in settings.TARGETS)
    assert all(hasattr(ct.ComputeUnit, u) for u in settings.COMPUTE_UNITS)


def test_public_names_are_exported_lazily() -> None:
    import pytest_coreml_parity as p

    for name in ("assert_parity", "assert_finite", "emulate", "Emulator", "EmulatorState", "UnsupportedOpError", "CoreMLModel"):
        assert name in p.__all__ and getattr(p, name) is not None
