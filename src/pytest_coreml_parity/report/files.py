"""Machine-readable diagnosis report (JSON) and the per-op error profile plot.

matplotlib is an optional extra (``pip install pytest-coreml-parity[plots]``);
it is imported only when a plot is written, and without it the JSON report is
still written and the plot is skipped with a note in the JSON.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import messages

if TYPE_CHECKING:
    from ..diagnose.fix import MixedPrecisionFix
    from ..diagnose.localize import Localization

REPORT_VERSION = 1


def report_stem(node_id: str | None) -> str:
    """A file-name-safe stem for a test node id."""
    if not node_id:
        return "diagnosis"
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", node_id).strip("_")[:150] or "diagnosis"


def report_data(
    localization: Localization, fix: MixedPrecisionFix | None, node_id: str | None = None
) -> dict[str, Any]:
    """The JSON document: versioned, with the localization, the profile and the fix."""
    from ..diagnose.localize import json_safe

    data: dict[str, Any] = {
        "version": REPORT_VERSION,
        "node_id": node_id,
        "localization": localization.to_dict(),
        "fix": json_safe(fix.to_dict()) if fix is not None else None,
    }
    return data


def write_report(
    report_dir: str | Path,
    localization: Localization,
    fix: MixedPrecisionFix | None = None,
    *,
    node_id: str | None = None,
) -> list[Path]:
    """Write ``<stem>.json`` and, with matplotlib, ``<stem>.png``; return the paths."""
    directory = Path(report_dir)
    directory.mkdir(parents=True, exist_ok=True)
    stem = report_stem(node_id)
    data = report_data(localization, fix, node_id)
    written: list[Path] = []
    png = directory / f"{stem}.png"
    try:
        plot_profile(localization, png, title=node_id)
        written.append(png)
        data["plot"] = png.name
    except ImportError:
        data["plot"] = None
        data["plot_note"] = messages.PLOT_NOTE
    path = directory / f"{stem}.json"
    path.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
    written.insert(0, path)
    return written


def write_data(report_dir: str | Path, body: dict[str, Any], *, node_id: str | None = None) -> Path:
    """Write a diagnosis that has no per-op profile (Core AI's) to ``<stem>.json``."""
    from ..diagnose.localize import json_safe

    directory = Path(report_dir)
    directory.mkdir(parents=True, exist_ok=True)
    data = {"version": REPORT_VERSION, "node_id": node_id, **json_safe(body)}
    path = directory / f"{report_stem(node_id)}.json"
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path


def write_headroom(report_dir: str | Path, headroom: dict[str, Any], *, node_id: str | None = None) -> Path:
    """Write one test's headroom (see ``diagnose/headroom.py``) to ``<stem>.headroom.json``."""
    from ..diagnose.localize import json_safe

    directory = Path(report_dir)
    directory.mkdir(parents=True, exist_ok=True)
    data = {"version": REPORT_VERSION, "node_id": node_id, "headroom": json_safe(headroom)}
    path = directory / f"{report_stem(node_id)}.headroom.json"
    path.write_text(json.dumps(data, indent=2, allow_nan=False) + "\n")
    return path


def plot_profile(localization: Localization, path: str | Path, *, title: str | None = None) -> Path:
    """Plot each op's relative error (fp16 vs fp32) along the program; mark the culprits."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    points = localization.profile
    finite = [p.rel_error for p in points if p.rel_error is not None and math.isfinite(p.rel_error)]
    floor = 1e-8
    top = max([localization.tolerance * 10, *finite, floor * 10]) * 10
    xs, ys, colors = [], [], []
    for i, p in enumerate(points):
        if p.rel_error is None:
            continue
        value = top if not math.isfinite(p.rel_error) else max(p.rel_error, floor)
        xs.append(i)
        ys.append(value)
        colors.append("tab:red" if p.non_finite or not math.isfinite(p.rel_error) else "tab:blue")
    fig, ax = plt.subplots(figsize=(max(6.0, min(16.0, 0.25 * len(points) + 4)), 4.0))
    ax.set_yscale("log")
    ax.plot(xs, ys, color="0.7", linewidth=1, zorder=1)
    ax.scatter(xs, ys, c=colors, s=18, zorder=2)
    ax.axhline(localization.tolerance, color="tab:orange", linestyle="--", linewidth=1,
               label=f"tolerance {localization.tolerance:g}")
    ax.axhline(top, color="tab:red", linestyle=":", linewidth=1, label="nan/inf (drawn at top)")
    for finding, label, color in (
        (localization.first_non_finite, "first non-finite", "tab:red"),
        (localization.first_error, "first beyond tolerance", "tab:purple"),
    ):
        if finding is None:
            continue
        index = next((i for i, p in enumerate(points) if p.name == finding.name), None)
        if index is None:
            continue
        ax.axvline(index, color=color, linewidth=1, alpha=0.6)
        ax.annotate(f"{label}:\n{finding.op_type} {finding.name}", (index, top),
                    xytext=(5, -30 if label.startswith("first non") else -60),
                    textcoords="offset points", fontsize=8, color=color)
    ax.set_xlabel("op index in the program (ops with float outputs)")
    ax.set_ylabel(f"relative error, {localization.precision} vs fp32")
    ax.set_title(title or f"per-op error profile ({localization.precision} vs fp32)", fontsize=10)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


