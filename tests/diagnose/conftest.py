"""Diagnosis results computed once per session: each one converts real models."""

from __future__ import annotations

from typing import Any

import pytest

from pytest_coreml_parity.diagnose import find_mixed_precision, localize

from .models import CASES

_LOCALIZED: dict[str, Any] = {}
_FIXED: dict[str, Any] = {}


@pytest.fixture(scope="session")
def localized() -> Any:
    def get(name: str) -> Any:
        if name not in _LOCALIZED:
            model, examples, failing = CASES[name]()
            _LOCALIZED[name] = localize(model, failing, example_inputs=examples)
        return _LOCALIZED[name]

    return get


@pytest.fixture(scope="session")
def fixed() -> Any:
    def get(name: str) -> Any:
        if name not in _FIXED:
            model, examples, failing = CASES[name]()
            _FIXED[name] = find_mixed_precision(model, examples, [failing])
        return _FIXED[name]

    return get
