"""The zoo speed benchmark still runs: one quick zoo model prints a row whose ratio is
its two times' quotient, and --write-docs replaces only what lies between the markers."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_zoo_speed.py"


def test_one_model_prints_a_ratio_row_and_writes_between_the_markers(tmp_path: Path) -> None:
    docs = tmp_path / "performance.md"
    docs.write_text(
        "# Performance\n\nbefore\n\n<!-- bench_zoo_speed: begin -->\nstale\n<!-- bench_zoo_speed: end -->\n\nafter\n"
    )
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--models", "hf/bert", "--precisions", "fp32", "--budget", "0.05",
         "--write-docs", str(docs)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )  # fmt: skip
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    row = re.search(
        r"^\| hf/bert \| fp32 \| (?P<torch>[\d.]+) \| (?P<emu>[\d.]+) \| (?P<ratio>[\d.]+) \| (?P<rounds>\d+) \| ok \|$",
        proc.stdout,
        re.MULTILINE,
    )
    assert row is not None, output
    torch_ms, emu_ms, ratio = float(row["torch"]), float(row["emu"]), float(row["ratio"])
    assert int(row["rounds"]) >= 5
    assert abs(ratio - emu_ms / torch_ms) <= 0.01 * ratio + 0.01  # printed values are rounded
    assert re.search(r"^- fp32: median [\d.]+ over 1 models", proc.stdout, re.MULTILINE), output
    text = docs.read_text()
    assert text.startswith("# Performance\n\nbefore\n\n<!-- bench_zoo_speed: begin -->\n")
    assert text.endswith("<!-- bench_zoo_speed: end -->\n\nafter\n")
    assert "stale" not in text and row.group(0) in text
