"""Shared by the benchmarks: pin threads before heavy imports, write one docs section."""

from __future__ import annotations

import os
from pathlib import Path


def set_threads(argv: list[str]) -> int:
    """Pin BLAS/OpenMP threads from ``--threads N`` (default 1); call before numpy/torch load."""
    threads = 1
    for i, arg in enumerate(argv):
        if arg == "--threads" and i + 1 < len(argv):
            threads = int(argv[i + 1])
        elif arg.startswith("--threads="):
            threads = int(arg.split("=", 1)[1])
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)
    os.environ.setdefault("TQDM_DISABLE", "1")
    return threads


def write_section(path: Path, heading: str, text: str) -> None:
    """Replace (or append) the section that starts with the line ``heading`` in ``path``."""
    old = path.read_text(encoding="utf-8") if path.exists() else "# Performance\n"
    lines = old.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.strip() == heading), None)
    if start is None:
        new = old.rstrip("\n") + "\n\n" + text
    else:
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
        rest = "".join(lines[end:])
        new = "".join(lines[:start]) + text + ("\n" + rest if rest else "")
    path.write_text(new, encoding="utf-8")
