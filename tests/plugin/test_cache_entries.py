"""ConversionCache on its own: verified entries, cached failures, two processes racing on one key."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pytest_coreml_parity.cache import ConversionCache, verify_entry
from pytest_coreml_parity.errors import CacheEntryError, ConversionError
from pytest_coreml_parity.stacks.coreml.layout import PACKAGE_LAYOUT, SCOPES

KEY = "k" * 32


class FakeModel:
    """Stands in for an MLModel: ``save`` writes a package directory."""

    def save(self, path: str) -> None:
        Path(path).mkdir()
        (Path(path) / "Manifest.json").write_text("{}")


def _convert() -> tuple[FakeModel, str]:
    return FakeModel(), "t"


def _load(path: Path) -> str:
    return f"loaded {path.name}"


def test_the_scopes_sidecar_name_matches_diagnosis() -> None:
    from pytest_coreml_parity.diagnose.names import SCOPES_SIDECAR

    assert SCOPES == SCOPES_SIDECAR


def test_an_entry_round_trips_with_a_manifest(tmp_path: Path) -> None:
    entry, event = ConversionCache(tmp_path).get(KEY, _convert, _load, PACKAGE_LAYOUT)
    assert event == "converted" and entry.rebuilt is None
    listed = verify_entry(tmp_path / KEY, KEY)
    assert {"meta.json", "torch_scopes.json", "model.mlpackage/Manifest.json"} <= listed
    entry, event = ConversionCache(tmp_path).get(KEY, _convert, _load, PACKAGE_LAYOUT)
    assert (event, entry.mlmodel, entry.structure) == ("disk", "loaded model.mlpackage", "t")


def test_a_failed_conversion_is_cached_and_verified(tmp_path: Path) -> None:
    def fail() -> tuple[FakeModel, str]:
        raise ConversionError("coremltools could not convert M", "detail")

    entry, event = ConversionCache(tmp_path).get(KEY, fail, _load, PACKAGE_LAYOUT)
    assert event == "failed" and entry.error is not None
    entry, event = ConversionCache(tmp_path).get(KEY, _convert, _load, PACKAGE_LAYOUT)  # not retried
    assert event == "failed" and entry.error is not None
    first, note = entry.error.summary.split("\n")
    assert first == "coremltools could not convert M"  # and where it came from:
    assert note.startswith("(served from the disk cache: this conversion failed on 20")
    assert str(tmp_path / KEY) in note
    (tmp_path / KEY / "error.json").write_text("{}")  # garbled: same file, other content
    cache = ConversionCache(tmp_path)
    entry, event = cache.get(KEY, _convert, _load, PACKAGE_LAYOUT)
    assert event == "converted"
    assert entry.rebuilt is not None and entry.rebuilt.startswith("error.json: size")
    assert cache.stats.rebuilt == [entry.rebuilt]


def test_an_entry_that_does_not_load_is_rebuilt(tmp_path: Path) -> None:
    ConversionCache(tmp_path).get(KEY, _convert, _load, PACKAGE_LAYOUT)

    def broken(path: Path) -> str:
        raise OSError("unreadable")

    entry, event = ConversionCache(tmp_path).get(KEY, _convert, broken, PACKAGE_LAYOUT)
    assert event == "converted"
    assert entry.rebuilt == "model.mlpackage: does not load (OSError)"


def test_verification_names_the_problem(tmp_path: Path) -> None:
    ConversionCache(tmp_path).get(KEY, _convert, _load, PACKAGE_LAYOUT)
    (tmp_path / KEY / "manifest.json").write_text("not json")
    with pytest.raises(CacheEntryError, match=r"manifest\.json: garbled"):
        verify_entry(tmp_path / KEY, KEY)


RACER = """
import sys, time
from pathlib import Path
from pytest_coreml_parity.cache import ConversionCache
from pytest_coreml_parity.stacks.coreml.layout import PACKAGE_LAYOUT

directory, log, go, ready = (Path(a) for a in sys.argv[1:5])


class FakeModel:
    def save(self, path):
        Path(path).mkdir()
        (Path(path) / "Manifest.json").write_text("{}")


def convert():
    with open(log, "a") as handle:
        handle.write("converted\\n")
    time.sleep(1.0)  # long enough for the other process to reach the lock
    return FakeModel(), "t"


import pytest_coreml_parity.diagnose.names  # noqa: F401  (imported before the race starts)

ready.touch()
while not go.exists():
    time.sleep(0.01)
entry, event = ConversionCache(directory).get("k" * 32, convert, lambda path: "loaded", PACKAGE_LAYOUT)
print(event)
"""


def test_two_processes_racing_on_one_key_convert_once(tmp_path: Path) -> None:
    script = tmp_path / "racer.py"
    script.write_text(RACER)
    log, go = tmp_path / "log", tmp_path / "go"
    args = [sys.executable, str(script), str(tmp_path / "cache"), str(log), str(go)]
    ready = [tmp_path / f"ready{i}" for i in range(2)]
    racers = [subprocess.Popen([*args, str(r)], stdout=subprocess.PIPE, text=True) for r in ready]
    deadline = time.monotonic() + 120
    while not all(r.exists() for r in ready) and time.monotonic() < deadline:
        time.sleep(0.01)
    go.touch()  # both are imported and waiting: they reach the cache within milliseconds
    events = sorted(p.communicate(timeout=120)[0].strip() for p in racers)
    assert all(p.returncode == 0 for p in racers)
    assert events == ["converted", "disk"]
    assert log.read_text().splitlines() == ["converted"]
    manifest = json.loads((tmp_path / "cache" / KEY / "manifest.json").read_text())
    assert manifest["key"] == KEY


XDIST_CONFTEST = """
import pytest
import torch


@pytest.fixture
def torch_model():
    return torch.nn.Sequential(torch.nn.ReLU()).eval()


@pytest.fixture
def example_inputs():
    return (torch.linspace(-1.0, 1.0, 6).reshape(2, 3),)
"""


def test_xdist_workers_sharing_one_model_convert_it_once(pytester: pytest.Pytester, tmp_path: Path) -> None:
    pytester.makeconftest(XDIST_CONFTEST)
    pytester.makepyfile(
        test_one="def test_a(coreml_model):\n    pass\n",
        test_two="def test_b(coreml_model):\n    pass\n",
    )
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-n", "2", "--dist=load", "--coreml-precisions=fp32",
        f"--coreml-cache-dir={tmp_path / 'cache'}",
    )
    result.assert_outcomes(passed=2)
    # Whichever worker binds second reads the disk (or its memory, if it ran both tests).
    result.stdout.re_match_lines(
        [r"coreml-parity: backend emulator; 1 converted, [01] from disk cache, [01] reused in session, 0 failed"]
    )


def test_a_stray_file_in_place_of_an_entry_is_replaced(tmp_path: Path) -> None:
    (tmp_path / KEY).write_text("not a directory")
    entry, event = ConversionCache(tmp_path).get(KEY, _convert, _load, PACKAGE_LAYOUT)
    assert event == "converted"
    assert entry.rebuilt is not None and entry.rebuilt.startswith("manifest.json: unreadable")
    assert ConversionCache(tmp_path).get(KEY, _convert, _load, PACKAGE_LAYOUT)[1] == "disk"
