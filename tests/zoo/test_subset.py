"""The zoo's CI subset through the plugin's real default path: convert, run, fp32 parity.

One pytest subprocess runs the generated plain test files of :data:`CI_SUBSET` (the
quickest real models of the last full run, docs/zoo.md), exactly as
``python -m tools.zoo run`` does. The full zoo runs by command.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from tools.zoo.registry import CI_SUBSET, get
from tools.zoo.run import run_group

pytestmark = pytest.mark.zoo


def test_ci_subset_converts_runs_and_passes_fp32(tmp_path: Path) -> None:
    results = run_group([get(name) for name in CI_SUBSET], precisions=("fp32",), workdir=tmp_path, timeout=1200)
    log = (tmp_path / "pytest.log").read_text()[-3000:] if (tmp_path / "pytest.log").exists() else ""
    for result in results:
        slot = result.precisions["fp32"]
        assert slot.verdict == "pass", (
            f"{result.name}: {slot.verdict} {slot.stage}: {slot.cause}\n{slot.detail}\n{result.harness_error}\n{log}"
        )
        assert slot.emulator_ms and slot.torch_ms and slot.ratio, f"{result.name} was not timed"
        assert slot.convert_s is not None
