"""Write one benchmark's section of docs/performance.md, leaving the others alone."""

from __future__ import annotations

from pathlib import Path


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
