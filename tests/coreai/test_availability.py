"""coreai_unavailable_reason: cheap, and names the cause when Core AI cannot run."""

from __future__ import annotations

import subprocess
import sys

import pytest

from pytest_coreml_parity.coreai import availability

pytestmark = pytest.mark.coreai


def test_reason_is_none_or_one_line() -> None:
    reason = availability.coreai_unavailable_reason()
    assert reason is None or (reason and "\n" not in reason)


@pytest.mark.parametrize(
    ("system", "machine", "usable"),
    [
        ("linux", "x86_64", True),
        ("darwin", "arm64", True),
        ("linux", "aarch64", False),
        ("darwin", "x86_64", False),
        ("win32", "amd64", False),
    ],
)
def test_platform(system: str, machine: str, usable: bool) -> None:
    reason = availability._platform_reason(system, machine)
    assert (reason is None) == usable
    if reason is not None:
        assert f"{system} {machine}" in reason


def test_glibc() -> None:
    assert availability._glibc_reason((2, 36)) is None
    assert availability._glibc_reason((2, 34)) is None
    old = availability._glibc_reason((2, 31))
    assert old is not None and "glibc >= 2.34" in old and "2.31" in old
    musl = availability._glibc_reason(None)
    assert musl is not None and "not glibc" in musl


def test_python_version() -> None:
    assert availability._python_reason((3, 11)) is None
    reason = availability._python_reason((3, 15))
    assert reason is not None and "Python 3.15" in reason


def test_not_installed_and_import_error_are_named() -> None:
    availability.DISTRIBUTIONS.setdefault("no_such_coreai_module", "no-such-coreai")
    try:
        missing = availability._installed_reason(("no_such_coreai_module",))
    finally:
        del availability.DISTRIBUTIONS["no_such_coreai_module"]
    assert missing is not None and "no-such-coreai not installed" in missing
    broken = availability._import_reason(("no_such_coreai_module",))
    assert broken is not None and "ModuleNotFoundError" in broken


def test_importing_the_package_loads_no_torch_or_coreai() -> None:
    code = (
        "import sys\n"
        "import pytest_coreml_parity.coreai as c\n"
        "from pytest_coreml_parity.coreai import availability, program, worker, recording, errors\n"
        "heavy = [m for m in ('torch', 'coreai', 'coreai_torch', 'numpy') if m in sys.modules]\n"
        "print(heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
