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
    # bind is printed to 1 ms and lint to 0.1 ms, so the ratio of the unrounded times
    # lies between the extremes the rounding allows (the ratio itself is printed to 0.01 %).
    lowest = 100 * max(lint - 0.05, 0.0) / (bind + 0.5)
    highest = 100 * (lint + 0.05) / max(bind - 0.5, 1e-9)
    assert lowest - 0.005 <= ratio <= highest + 0.005, (lowest, ratio, highest)
    assert "## Lint cost" in proc.stdout
