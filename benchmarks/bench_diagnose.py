"""Cost of diagnosis: conversions and wall time for localization and the search.

Run: ``.venv/bin/python benchmarks/bench_diagnose.py`` (from the repo root).
Writes the results table to the '## Diagnosis cost' section of docs/performance.md and the error-profile
plot of the complex division to docs/images/error-profile-complex-div.png.

Localization needs one conversion and one recorded run per precision. The
search's target cost for a single culprit chain is about 2*log2(n) + a few
conversions (n = ops the fp16 pass converted); we measure the range-seeded
search (the default) and plain bisection + minimization (``use_seed=False``).
"""

from __future__ import annotations

import math
import platform
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
SECTION = "## Diagnosis cost"
warnings.simplefilter("ignore")

from _docs import write_section  # noqa: E402
from tests.diagnose.models import CASES  # noqa: E402

from pytest_coreml_parity.diagnose import find_mixed_precision, localize  # noqa: E402
from pytest_coreml_parity.report import plot_profile  # noqa: E402

MODELS = ("complex_div", "transformer_block", "masked_attention", "large_activations")


def main() -> None:
    rows = []
    for name in MODELS:
        model, examples, failing = CASES[name]()
        start = time.perf_counter()
        loc = localize(model, failing, example_inputs=examples)
        loc_seconds = time.perf_counter() - start
        if name == "complex_div":
            plot_profile(loc, ROOT / "docs/images/error-profile-complex-div.png",
                         title="ComplexDiv, fp16 vs fp32 (input with |rb| = 300)")
        for use_seed in (True, False):
            fix = find_mixed_precision(model, examples, [failing], use_seed=use_seed)
            n = fix.n_candidates
            rows.append((
                name, loc.first_non_finite.op_type if loc.first_non_finite else "-",
                f"{loc_seconds:.1f}", "seeded" if use_seed else "bisection only",
                n, f"{2 * math.log2(n):.1f}" if n else "-", fix.conversions,
                f"{len(fix.kept_ops)} of {n}" if fix.found else "not found",
                f"{fix.seconds:.1f}",
            ))
            print(rows[-1], flush=True)
    header = ("model", "first bad op", "localize s (2 conversions + 2 recorded runs)", "search",
              "n ops", "2·log2(n)", "search conversions", "kept in fp32", "search s")
    lines = [
        SECTION,
        "",
        f"Measured with `benchmarks/bench_diagnose.py` on {platform.machine()} Linux, Python "
        f"{platform.python_version()}, 2 shared CPU cores (other jobs running), emulator backend. "
        "Search conversions exclude the two baseline conversions (fp16 and fp32) that "
        "localization also needs; search seconds include them and every verification run.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    lines += [
        "",
        "The seeded search (default) starts from the ops whose fp32 values, inputs or consts",
        "fp16 cannot hold, plus their consumers, checks that set with one conversion, then",
        "drops ops one at a time while parity holds. Bisection only (Polygraphy-style) finds",
        "the segment in about 2·log2(n) conversions, then pays one conversion per op of the",
        "segment to minimize it.",
        "",
    ]
    out = ROOT / "docs/performance.md"
    write_section(out, SECTION, "\n".join(lines))
    print(f"wrote the '{SECTION}' section of {out}")


if __name__ == "__main__":
    main()
