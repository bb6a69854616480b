"""Lazy package attributes (PEP 562): the heavy modules load on first use, not on import.

Why: ``import pytest_coreml_parity`` happens in every pytest run that has the plugin
installed, and must not pull in torch, coremltools or coreai until a test needs them.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any


def lazy_getattr(package: str, where: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package`` importing each name in ``where`` from its
    submodule on first access (then cached in the package's namespace)."""

    def __getattr__(name: str) -> Any:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f".{module}", package), name)
        setattr(sys.modules[package], name, value)
        return value

    return __getattr__
