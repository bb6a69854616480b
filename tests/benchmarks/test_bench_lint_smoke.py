"""The lint benchmark still runs: on its plain-torch model it prints a row with a ratio
and the finding the model holds (the RMSNorm's stripped fp32 cast)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_lint.py"


def test_one_model_prints_a_ratio_row() -> None:
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--models", "tiny_decoder", "--repeat", "1", "--no-write"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    row = re.search(
        r"^\| tiny_decoder \| fp16 \| (?P<ops>\d+) \| (?P<bind>[\d.]+) \| (?P<lint>[\d.]+) \| "
        r"(?P<ratio>[\d.]+)% \| [\d.]+ \| 1 \| coreml-fp32-cast-stripped \|$",
        proc.stdout,
        re.MULTILINE,
    )
    assert row is not None, output
    bind, lint, ratio = float(row["bind"]), float(row["lint"]), float(row["ratio"])
    assert int(row["ops"]) > 0 and bind > 0
    assert abs(ratio - 100 * lint / bind) <= 0.01 * ratio + 0.05  # printed values are rounded
    assert "## Lint cost" in proc.stdout
