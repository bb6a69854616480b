"""A cache that heals: damaged disk entries are detected, rebuilt and reported."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from pytest_coreml_parity import messages

CONFTEST = '''
import pytest
import torch


@pytest.fixture
def torch_model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(16, 16), torch.nn.ReLU()).eval()


@pytest.fixture
def example_inputs():
    return (torch.linspace(-1.0, 1.0, 32).reshape(2, 16),)
'''

TEST = '''
from pytest_coreml_parity import assert_parity


def test_parity(coreml_model, example_inputs):
    assert_parity(coreml_model, *example_inputs)
'''


def _only(entry_root: Path, name: str) -> Path:
    (found,) = entry_root.rglob(name)
    return found


def _truncate_weights(entry: Path) -> str:
    weights = _only(entry, "weight.bin")
    size = weights.stat().st_size
    weights.write_bytes(weights.read_bytes()[:12])
    return f"weight.bin: size 12 != {size}"


def _garble(name: str) -> Callable[[Path], str]:
    def garble(entry: Path) -> str:
        path = _only(entry, name)
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0xFF  # same size, different content
        path.write_bytes(bytes(data))
        return f"{name}: garbled (sha256 mismatch)"

    return garble


def _remove_scopes(entry: Path) -> str:
    (entry / "torch_scopes.json").unlink()
    return "torch_scopes.json: missing"


def _remove_manifest(entry: Path) -> str:
    (entry / "manifest.json").unlink()
    return "half-written (no manifest.json)"


def _foreign_key(entry: Path) -> str:
    manifest = json.loads((entry / "manifest.json").read_text())
    manifest["key"] = "0" * 32
    (entry / "manifest.json").write_text(json.dumps(manifest))
    return "foreign (manifest key 000000000000...)"


def _foreign_format(entry: Path) -> str:
    manifest = json.loads((entry / "manifest.json").read_text())
    manifest["format"] = 1
    (entry / "manifest.json").write_text(json.dumps(manifest))
    from pytest_coreml_parity.convert import CACHE_FORMAT

    return f"foreign (cache format 1 != {CACHE_FORMAT})"


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(_truncate_weights, id="weight.bin-truncated"),
        pytest.param(_garble("model.mlmodel"), id="model.mlmodel-garbled"),
        pytest.param(_garble("meta.json"), id="meta.json-garbled"),
        pytest.param(_remove_scopes, id="torch_scopes.json-missing"),
        pytest.param(_remove_manifest, id="manifest-missing"),
        pytest.param(_foreign_key, id="manifest-foreign-key"),
        pytest.param(_foreign_format, id="manifest-foreign-format"),
    ],
)
def test_a_damaged_entry_is_rebuilt_and_reported(
    pytester: pytest.Pytester,
    run: Callable[..., pytest.RunResult],
    tmp_path: Path,
    damage: Callable[[Path], str],
) -> None:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_model=TEST)
    cache_dir = tmp_path / "cache"
    cache = f"--coreml-cache-dir={cache_dir}"
    run(cache, "--coreml-precisions=fp32").assert_outcomes(passed=1)
    (entry,) = (p for p in cache_dir.iterdir() if p.is_dir())
    reason = damage(entry)

    second = run(cache, "--coreml-precisions=fp32")
    second.assert_outcomes(passed=1)
    rebuilt = messages.CACHE_REBUILT.format(count=1, entries="entry", reasons=reason)
    second.stdout.fnmatch_lines(
        [f"coreml-parity: backend emulator; 1 converted, 0 from disk cache, *; {rebuilt}"]
    )
    # The rebuilt entry is whole again: a third run reads it.
    run(cache, "--coreml-precisions=fp32").stdout.fnmatch_lines(
        ["coreml-parity: backend emulator; 0 converted, 1 from disk cache, * failed to convert"]
    )



def test_rebuilds_are_reported_on_the_xdist_controller(pytester: pytest.Pytester, tmp_path: Path) -> None:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_model=TEST)
    cache_dir = tmp_path / "cache"
    args = ("-p", "no:cacheprovider", "-n", "2", "--coreml-precisions=fp32,fp16", f"--coreml-cache-dir={cache_dir}")
    pytester.runpytest_subprocess(*args).assert_outcomes(passed=2)
    reasons = sorted(_truncate_weights(entry) for entry in cache_dir.iterdir() if entry.is_dir())
    result = pytester.runpytest_subprocess(*args)
    result.assert_outcomes(passed=2)
    rebuilt = messages.CACHE_REBUILT.format(count=2, entries="entries", reasons="*")
    result.stdout.fnmatch_lines([f"coreml-parity: backend emulator; 2 converted, *; {rebuilt}"])
    line = next(ln for ln in result.stdout.lines if ln.startswith("coreml-parity: backend emulator;"))
    assert all(reason in line for reason in reasons), line
