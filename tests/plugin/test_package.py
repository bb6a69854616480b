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


def _imported_modules(module: str) -> set[str]:
    """Absolute names of every module ``module`` imports (lazy imports included), via ast."""
    import ast
    from pathlib import Path

    import pytest_coreml_parity

    package = Path(pytest_coreml_parity.__file__).parent
    tree = ast.parse((package / f"{module}.py").read_text())  # module may be "diagnose/fix"
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = "pytest_coreml_parity" if node.level else ""
            name = ".".join(part for part in (base, node.module or "") if part)
            if node.module is None:  # from . import messages
                found.update(f"{name}.{alias.name}" for alias in node.names)
            else:
                found.add(name)
    return found


def test_compare_imports_neither_diagnose_nor_report() -> None:
    """The assertion layer raises ParityFailure; diagnosis and reports sit above it."""
    imported = _imported_modules("compare")
    assert not {m for m in imported if ".diagnose" in m or m.endswith(".report")}, imported


def test_verdict_is_a_leaf() -> None:
    """One rule, one preset table: numpy and the package's leaf modules only."""
    imported = _imported_modules("verdict")
    ours = {m for m in imported if m.startswith("pytest_coreml_parity")}
    leaves = {"errors", "messages", "precisions", "gates", "_suggest"}  # the tables; the close-match rule
    assert ours <= {f"pytest_coreml_parity.{leaf}" for leaf in leaves}, ours
    others = {m.split(".")[0] for m in imported - ours}
    assert others <= {"__future__", "math", "numbers", "collections", "dataclasses", "typing", "numpy"}, others


def test_diagnose_does_not_import_report_or_compare() -> None:
    """Diagnosis sits beside the pipeline: the plugin calls it and writes reports itself."""
    from pathlib import Path

    import pytest_coreml_parity

    directory = Path(pytest_coreml_parity.__file__).parent / "diagnose"
    for path in directory.glob("*.py"):
        imported = _imported_modules(f"diagnose/{path.stem}")
        # level-2 imports resolve to the package here, so ``from ..report`` shows as .report
        assert not {m for m in imported if m.endswith((".report", ".compare", ".model", ".plugin"))}, path
