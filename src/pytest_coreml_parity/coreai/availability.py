"""Can Apple's Core AI (coreai-core's interpreter + coreai-torch) run here, and if not, why.

Cheap by design: the platform, glibc and Python checks read constants, the installed
check uses :func:`importlib.util.find_spec`, and only when all of them pass is
``coreai.runtime`` (the native interpreter) imported. ``deep=True`` also imports
coreai-torch and coreai-opt, which import torch.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import platform
import sys
import warnings
from collections.abc import Iterator
from functools import lru_cache

#: Distributions the target needs, by import name.
DISTRIBUTIONS: dict[str, str] = {
    "coreai": "coreai-core",
    "coreai_torch": "coreai-torch",
    "coreai_opt": "coreai-opt",
}
#: coreai-core's Linux wheels are tagged manylinux_2_34.
MIN_GLIBC: tuple[int, int] = (2, 34)
#: The first Python version without coreai-core wheels (none published for 3.15 as of 1.0.0b3).
FIRST_UNSUPPORTED_PYTHON: tuple[int, int] = (3, 15)

INSTALL_HINT = "pip install -c constraints.txt 'pytest-coreml-parity[coreai]'"


def _platform_reason(system: str, machine: str) -> str | None:
    if system == "linux" and machine in ("x86_64", "amd64"):
        return None
    if system == "darwin" and machine == "arm64":
        return None
    return (
        f"coreai-core has wheels for Linux x86_64 and macOS arm64 only (this is {system} {machine})"
    )


def _glibc_version() -> tuple[int, int] | None:
    """(major, minor) of the running glibc, or None if not glibc (e.g. musl)."""
    try:
        text = os.confstr("CS_GNU_LIBC_VERSION") or ""
    except (ValueError, OSError, AttributeError):
        return None
    name, _, version = text.partition(" ")
    if name != "glibc":
        return None
    try:
        major, minor = (int(part) for part in version.split(".")[:2])
    except ValueError:
        return None
    return major, minor


def _glibc_reason(glibc: tuple[int, int] | None) -> str | None:
    need = ".".join(map(str, MIN_GLIBC))
    if glibc is None:
        return f"coreai-core's Linux wheels need glibc >= {need} (this libc is not glibc)"
    if glibc < MIN_GLIBC:
        have = ".".join(map(str, glibc))
        return f"coreai-core's Linux wheels need glibc >= {need} (this is glibc {have})"
    return None


def _python_reason(version: tuple[int, int]) -> str | None:
    if version >= FIRST_UNSUPPORTED_PYTHON:
        have = ".".join(map(str, version))
        return f"coreai-core has no wheels for Python {have} yet"
    return None


def _installed_reason(names: tuple[str, ...]) -> str | None:
    missing = [DISTRIBUTIONS[name] for name in names if importlib.util.find_spec(name) is None]
    if missing:
        return f"{', '.join(missing)} not installed ({INSTALL_HINT})"
    return None


def _import_reason(names: tuple[str, ...]) -> str | None:
    for name in names:
        try:
            with quiet_coreai_warnings():
                importlib.import_module(name)
        except Exception as exc:  # an ImportError, or whatever a native module raises
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            return f"import {name} failed: {type(exc).__name__}: {first}"
    return None


@contextlib.contextmanager
def quiet_coreai_warnings() -> Iterator[None]:
    """Silence the warnings coreai-torch/coreai-opt raise on every import and conversion here.

    Judged harmless, each by message: coreai-torch compares ``2.13.0+cpu`` > ``2.13.0`` and
    warns it is unvalidated; torch's pytree deprecations and torchao's enum notices come
    from inside the libraries.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="coreai-torch has only been validated")
        warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")
        warnings.filterwarnings("ignore", message=".*is an Enum subclass", category=UserWarning)
        warnings.filterwarnings(
            "ignore", category=DeprecationWarning, module=r"(torch|torchao|coreai).*"
        )
        warnings.filterwarnings(
            "ignore", category=FutureWarning, module=r"(torch|torchao|coreai).*"
        )
        yield


@lru_cache(maxsize=2)
def coreai_unavailable_reason(deep: bool = False) -> str | None:
    """None when the Core AI target can run here, else the one-line reason it cannot.

    ``deep`` also imports coreai-torch and coreai-opt (and so torch); the default
    imports only ``coreai.runtime``, the native interpreter.
    """
    system = sys.platform
    reason = _platform_reason(system, platform.machine().lower())
    if reason is None and system == "linux":
        reason = _glibc_reason(_glibc_version())
    if reason is None:
        reason = _python_reason(sys.version_info[:2])
    if reason is None:
        reason = _installed_reason(tuple(DISTRIBUTIONS))
    if reason is None:
        modules = ("coreai.runtime", "coreai_torch", "coreai_opt") if deep else ("coreai.runtime",)
        reason = _import_reason(modules)
    return reason


__all__ = ["coreai_unavailable_reason", "quiet_coreai_warnings"]
