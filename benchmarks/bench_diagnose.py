"""Cost of diagnosis: conversions and wall time for localization and the search.

Run: ``.venv/bin/python benchmarks/bench_diagnose.py`` (from the repo root).
Writes the results table to the '## Diagnosis cost' section of docs/performance.md and the error-profile
plot of the complex division to docs/images/error-profile-complex-div.png.
``--localization-only`` measures only what localizing against torch adds per failing
test (the '## Localization against torch' section): at fp32, where the test's own
program is all there is, and at fp16, on top of the fp16-vs-fp32 comparison.

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
from collections.abc import Callable
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
SECTION = "## Diagnosis cost"
TORCH_SECTION = "## Localization against torch"
REPEATS = 5
warnings.simplefilter("ignore")

from _docs import write_section  # noqa: E402
from tests.diagnose.models import CASES  # noqa: E402

from pytest_coreml_parity.convert import ConversionOptions, convert_model  # noqa: E402
from pytest_coreml_parity.diagnose import find_mixed_precision, localize  # noqa: E402
from pytest_coreml_parity.diagnose.departure import first_departure  # noqa: E402
from pytest_coreml_parity.diagnose.localize import feed_for  # noqa: E402
from pytest_coreml_parity.diagnose.names import scope_names  # noqa: E402
from pytest_coreml_parity.diagnose.subject import Subject, as_arrays  # noqa: E402
from pytest_coreml_parity.diagnose.workflow import localize_subject  # noqa: E402
from pytest_coreml_parity.emulator import Emulator  # noqa: E402
from pytest_coreml_parity.report import plot_profile  # noqa: E402
from pytest_coreml_parity.verdict import preset  # noqa: E402

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


TORCH_MODELS = ("rmsnorm_zero_row", "complex_div", "transformer_block", "masked_attention")


def _best(fn: Callable[[], object], repeats: int = REPEATS) -> float:
    """Best of ``repeats`` wall times of ``fn()`` (the machine is shared)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def localization_rows() -> list[tuple[object, ...]]:
    """Per failing test: what comparing with torch costs, at fp32 and at fp16."""
    rows = [_row(name, precision) for name in TORCH_MODELS for precision in ("fp32", "fp16")]
    return rows


def _row(name: str, precision: str) -> tuple[object, ...]:
    model, examples, failing = CASES[name]()
    inputs = as_arrays(failing)
    options = ConversionOptions(precision=precision)
    mlmodel = convert_model(model, examples, options)
    subject = Subject(model, tuple(examples), options)
    subject.given[(precision, None)] = mlmodel  # the test's own program, as the plugin has it
    if precision == "fp16":
        subject.model("fp32")  # the fp32 reference the fp16 localization needs anyway
    before = subject.conversions
    start = time.perf_counter()
    subject.code_lines()  # our own trace: paid once per failing test
    trace_s = time.perf_counter() - start
    probe_s = _best(partial(subject.torch_values, inputs))
    em = Emulator(mlmodel)
    rec = em.record(feed_for(em, inputs))
    values = subject.torch_values(inputs)
    gates = preset(precision)
    compare = partial(
        first_departure, rec, values, rtol=gates.rtol, atol=gates.atol, scale_atol=gates.scale_atol,
        scopes=scope_names(mlmodel),
    )
    compare_s = _best(compare)
    _dep, compared = compare()
    total_s = _best(partial(localize_subject, subject, inputs, precision), repeats=3)
    row = (
        name, precision, len(rec.ops), compared, subject.conversions - before,
        f"{trace_s * 1000:.0f}", f"{probe_s * 1000:.1f}", f"{compare_s * 1000:.1f}",
        f"{total_s * 1000:.0f}",
    )
    print(row, flush=True)
    return row


def write_localization(rows: list[tuple[object, ...]]) -> None:
    header = ("model", "precision", "MIL ops", "torch values compared", "extra conversions",
              "trace ms (once)", "torch probe ms", "compare ms", "whole localization ms")
    lines = [
        TORCH_SECTION,
        "",
        f"Measured with `benchmarks/bench_diagnose.py --localization-only` on {platform.machine()} "
        f"Linux, Python {platform.python_version()}, 2 shared CPU cores, emulator backend; best of "
        f"{REPEATS} (whole localization: best of 3). Per failing test, comparing every op with "
        "torch's own intermediate values adds one trace of the model (torch source lines need it "
        "anyway), one run of the traced graph with every intermediate registered as an output "
        "(the probe), and the comparisons. It converts nothing: at fp32 the test's program is the "
        "only program, at fp16 the fp32 conversion the fp16-vs-fp32 comparison already needs is "
        "reused. Whole localization: the recorded run(s) plus all of the above, with the trace "
        "already cached.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    lines.append("")
    out = ROOT / "docs/performance.md"
    write_section(out, TORCH_SECTION, "\n".join(lines))
    print(f"wrote the '{TORCH_SECTION}' section of {out}")


if __name__ == "__main__":
    if "--localization-only" not in sys.argv:
        main()
    write_localization(localization_rows())
