"""coremltools is imported without the optional packages it never uses here (_coremltools.py).

Each check runs in a fresh process, as the plugin's first conversion does: the hidden
packages stay out of ``sys.modules``, coremltools ends in the state it reaches on its
own (its ``_HAS_SKLEARN`` flag is the same with the hiding turned off), and the user's
own ``import`` of a hidden package still works afterwards.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import pytest

from pytest_coreml_parity import _coremltools

CODE = """
import json, sys
import torch
from pytest_coreml_parity._coremltools import hidden_packages, import_coremltools
hidden = hidden_packages()
ct = import_coremltools()
from coremltools import _deps
state = {
    "hidden": list(hidden),
    "imported": sorted(m for m in ("torchao", "transformers", "sklearn") if m in sys.modules),
    "has_sklearn": _deps._HAS_SKLEARN,
    "has_torch": _deps._HAS_TORCH,
}
for name in hidden:
    __import__(name)  # the user's own import still works
state["after"] = sorted(m for m in hidden if m in sys.modules)
print(json.dumps(state))
"""


def _run(hide: str) -> dict[str, object]:
    env = dict(os.environ, COREML_PARITY_HIDE_DEPS=hide)
    done = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, env=env, check=True)
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.skipif(importlib.util.find_spec("torchao") is None, reason="torchao is not installed")
def test_optional_packages_stay_out_of_coremltools_import_without_changing_it() -> None:
    hidden = _run("1")
    assert "torchao" in hidden["hidden"]  # type: ignore[operator]
    assert hidden["imported"] == [], hidden
    assert hidden["after"] == sorted(hidden["hidden"])  # type: ignore[call-overload]
    plain = _run("0")
    assert plain["hidden"] == []
    assert "torchao" in plain["imported"]  # type: ignore[operator]  # the cost we avoid
    assert hidden["has_sklearn"] == plain["has_sklearn"]
    assert hidden["has_torch"] is True


def test_the_torchao_hint_names_the_fix_only_when_torchao_was_hidden(monkeypatch: pytest.MonkeyPatch) -> None:
    error = RuntimeError("Torchao not found.\n torchao is needed to convert torchao.dequantize_affine")
    monkeypatch.setattr(_coremltools, "_HIDDEN_AT_IMPORT", set())
    assert _coremltools.explain_hidden_torchao(error) is None
    monkeypatch.setattr(_coremltools, "_HIDDEN_AT_IMPORT", {"torchao"})
    hint = _coremltools.explain_hidden_torchao(error)
    assert hint is not None and "import torchao in conftest.py" in hint
    assert _coremltools.explain_hidden_torchao(RuntimeError("unrelated")) is None


def test_an_already_imported_package_is_not_hidden(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torchao", sys.modules.get("torchao") or object())
    assert "torchao" not in _coremltools.hidden_packages()
    monkeypatch.setenv("COREML_PARITY_HIDE_DEPS", "0")
    assert _coremltools.hidden_packages() == ()
