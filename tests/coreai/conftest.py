"""Shared models and converted programs for the Core AI target's tests.

Every test here is marked ``coreai`` (deselect with ``-m "not coreai"``) and skips with
coreai_unavailable_reason() where Core AI cannot run. Conversions are session-scoped:
the first one pays ~7 s of imports, later ones ~1 s each.
"""

from __future__ import annotations

from typing import Any

import pytest

from pytest_coreml_parity.coreai.availability import coreai_unavailable_reason


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "coreai: real Core AI conversions and interpreter runs (tests/coreai)"
    )


def require_coreai() -> None:
    reason = coreai_unavailable_reason(deep=True)
    if reason is not None:
        pytest.skip(f"Core AI unavailable: {reason}")


@pytest.fixture(scope="session")
def needs_coreai() -> None:
    """Skip with the reason when Core AI cannot run here (use via pytestmark usefixtures)."""
    require_coreai()


@pytest.fixture(scope="session")
def programs(needs_coreai: None) -> dict[tuple[str, str], Any]:
    """Converted programs by (model, precision), shared by the whole session."""
    return {}


@pytest.fixture(scope="session")
def convert(programs: dict[tuple[str, str], Any]) -> Any:
    from pytest_coreml_parity.coreai import convert_for_coreai

    def get(
        key: str, model: Any, inputs: tuple[Any, ...], precision: str, fp32_ops: Any = None
    ) -> Any:
        if (key, precision) not in programs:
            programs[(key, precision)] = convert_for_coreai(model, inputs, precision, fp32_ops)
        return programs[(key, precision)]

    return get
