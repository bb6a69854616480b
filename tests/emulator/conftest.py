"""With ``COREML_PARITY_COMPARE_LOADERS=1``, every model an emulator test plans is also
planned by the other program loader, and the two plans must agree (loader_check.py).

Off by default (it doubles every load); ``tests/emulator/test_milproto.py`` checks a
fixed corpus on every run.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from pytest_coreml_parity.emulator import Emulator

COMPARE = os.environ.get("COREML_PARITY_COMPARE_LOADERS") == "1"


@pytest.fixture(autouse=COMPARE)
def _compare_loaders(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    from .loader_check import assert_loaders_agree

    original = Emulator.__init__

    def checked(self: Emulator, model: Any, *, function_name: str = "main", fp16_execution: str = "typed") -> None:
        original(self, model, function_name=function_name, fp16_execution=fp16_execution)
        assert_loaders_agree(model, function_name, fp16_execution)

    monkeypatch.setattr(Emulator, "__init__", checked)
    yield
