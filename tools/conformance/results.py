"""Classify conformance test outcomes and render per-op tables (text and markdown).

A coremltools op test can pass without ever reaching a prediction (type
inference, builder checks), so "passed" alone says nothing about the emulator.
Each test therefore gets one category from what actually happened to it:

* ``pass``: at least one emulator prediction (or a prediction error the test
  expected, e.g. for invalid indices), and the test passed;
* ``pass-fp16-typed``: fp32 suite only; the program is fp16-typed (the test built
  it with fp16 inputs, weights or outputs), it failed coremltools' fp32 tolerance,
  which is below one fp16 ulp, and passed at the harness's fp16-typed tolerance;
* ``fail``: the test failed after an emulator prediction (a numeric mismatch,
  or an emulator error other than an unsupported op);
* ``refused``: the emulator raised ``UnspecifiedResultError``: the test feeds
  inputs whose Core ML result is undefined (out-of-range indices with
  ``validate_indices=False``) and expects the device's arbitrary answer;
* ``unsupported``: the emulator raised ``UnsupportedOpError``;
* ``upstream-defect``: failed with the symptom of a documented defect in the test's
  own expected values (``defects.py`` gives the proof for each);
* ``skipped``: skipped or xfailed by the test itself;
* ``no-compare``: passed without any emulator prediction (nothing compared);
* ``error``: failed before any prediction (converter or builder), or after every
  emulator output passed coremltools' comparison (an assertion about the
  converted program itself): not the emulator's doing.

Each test is keyed by the op types its program ran at top level, without the
``cast`` ops the converter adds around fp16 programs (``add``, ``conv``,
``cond+less``), or by the unsupported op type, so the per-op rows sum to the totals.
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

CATEGORIES = (
    "pass",
    "pass-fp16-typed",
    "fail",
    "refused",
    "unsupported",
    "upstream-defect",
    "skipped",
    "no-compare",
    "error",
)

#: Ops the converter inserts around the op under test; not what a test is about.
PLUMBING_OPS = frozenset({"cast"})


@dataclass(frozen=True)
class TestResult:
    """One coremltools test as seen through the emulator."""

    nodeid: str
    category: str
    op: str
    precision: str
    opset: str
    error: str = ""
    #: For ``pass-fp16-typed``: the error in fp16 ulps at the reference.
    detail: str = ""

    __test__ = False  # not a pytest test class, despite the name


def op_key(op_types: Sequence[str], fallback: str) -> str:
    """The row a test belongs to: its program's top-level ops without plumbing."""
    ops = sorted(set(op_types))
    if not ops:
        return fallback
    meaningful = [op for op in ops if op not in PLUMBING_OPS]
    return "+".join(meaningful or ops)


@dataclass(frozen=True)
class Seen:
    """What the harness saw of one test, beyond pytest's outcome."""

    predictions: int = 0
    unsupported: bool = False
    emulator_error: bool = False
    #: The emulator refused inputs whose Core ML result is undefined.
    refused: bool = False
    #: fp32 suite: an fp16-typed comparison passed only at fp16 resolution.
    fp16_resolution: bool = False
    #: Every prediction was checked by coremltools' comparison, and passed.
    outputs_all_passed: bool = False
    #: The failure is a documented defect of the test's own expectation.
    upstream_defect: bool = False


def categorize(outcome: str, seen: Seen) -> str:
    """One category from a pytest outcome and what the harness saw (see module doc)."""
    if outcome == "skipped":
        return "skipped"
    if outcome == "passed":  # an expected prediction error counts: the test checked it
        if seen.fp16_resolution:
            return "pass-fp16-typed"
        return "pass" if seen.predictions or seen.emulator_error else "no-compare"
    if seen.unsupported:
        return "unsupported"
    if seen.refused:
        return "refused"
    if seen.upstream_defect:
        return "upstream-defect"
    if seen.predictions and seen.outputs_all_passed and not seen.emulator_error:
        return "error"  # every emulator output passed; the test failed on something else
    if seen.predictions or seen.emulator_error:
        return "fail"
    return "error"


def write_jsonl(results: Iterable[TestResult], path: Path) -> None:
    """Append results, one JSON object per line (runs per iOS directory share a file)."""
    with path.open("a", encoding="utf-8") as fh:
        for result in results:
            fh.write(json.dumps(asdict(result)) + "\n")


def read_jsonl(path: Path) -> list[TestResult]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [TestResult(**json.loads(line)) for line in lines if line.strip()]


def per_op_counts(results: Iterable[TestResult]) -> dict[str, Counter[str]]:
    table: dict[str, Counter[str]] = defaultdict(Counter)
    for result in results:
        table[result.op][result.category] += 1
    return dict(sorted(table.items()))


def totals(results: Iterable[TestResult]) -> Counter[str]:
    return Counter(result.category for result in results)


def _rows(results: Sequence[TestResult]) -> tuple[list[str], list[list[str]]]:
    header = ["op", *CATEGORIES, "total"]
    rows = []
    for op, counts in per_op_counts(results).items():
        rows.append([op, *(str(counts[c]) for c in CATEGORIES), str(sum(counts.values()))])
    total = totals(results)
    rows.append(["TOTAL", *(str(total[c]) for c in CATEGORIES), str(len(results))])
    return header, rows


def render_text(results: Sequence[TestResult]) -> str:
    """A fixed-width per-op table for the terminal."""
    header, rows = _rows(results)
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(header, widths, strict=True)))]
    for row in rows:
        lines.append(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )
    return "\n".join(lines)


def render_markdown(results: Sequence[TestResult]) -> str:
    """The same table as GitHub markdown."""
    header, rows = _rows(results)
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["--:"] * (len(header) - 1)) + "|"]
    for row in rows:
        cells = [f"`{row[0]}`" if row[0] != "TOTAL" else "**TOTAL**", *row[1:]]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _cause(result: TestResult) -> str:
    """A failure's cause without the numbers that differ between tests."""
    error = result.error
    if error.startswith("AssertionError"):
        fp16_params = "float16" in result.nodeid or "dtype=fp16" in result.nodeid
        typed = "fp16-typed program" if fp16_params or result.precision == "fp16" else "fp32-typed program"
        kind = "numeric mismatch" if "Not equal to tolerance" in error else error[:60]
        return f"{kind} ({typed})"
    first = re.sub(r" op '[^']*'| \(opset \w+\)|MLModel at \S+: ", "", error.split(" / ")[0])
    return first[:160]


def render_failure_groups(results: Sequence[TestResult], category: str = "fail", examples: int = 2) -> str:
    """Failures grouped by op and cause, with counts and a few example test ids."""
    groups: dict[tuple[str, str], list[TestResult]] = defaultdict(list)
    for result in results:
        if result.category == category:
            groups[(result.op, _cause(result))].append(result)
    lines = []
    for (op, cause), members in sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        lines.append(f"- **`{op}`** × {len(members)}: {cause.replace('|', '/')}")
        for member in members[:examples]:
            lines.append(f"  - `{member.nodeid}`")
    return "\n".join(lines) or "(none)"


def render_failures_markdown(results: Sequence[TestResult], category: str = "fail") -> str:
    """A bullet list of the tests in ``category`` with their first error line."""
    lines = []
    for result in results:
        if result.category == category:
            error = result.error.replace("|", "\\|")[:300]
            lines.append(f"- `{result.nodeid}` ({result.op}): {error}")
    return "\n".join(lines) or "(none)"


def _ulps(detail: str) -> float:
    match = re.search(r"max ([0-9.]+|inf|nan) fp16 ulp", detail)
    return float(match.group(1)) if match else float("nan")


def render_fp16_typed_summary(results: Sequence[TestResult]) -> str:
    """Per op: how many tests passed only at fp16 resolution, and their error in fp16 ulps
    at each output's largest magnitude (median and worst over the op's tests)."""
    groups: dict[str, list[float]] = defaultdict(list)
    for result in results:
        if result.category == "pass-fp16-typed":
            groups[result.op].append(_ulps(result.detail))
    lines = []
    for op, ulps in sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        ulps.sort()
        median = ulps[len(ulps) // 2]
        lines.append(f"- **`{op}`** × {len(ulps)}: median {median:.1f}, max {ulps[-1]:.1f} fp16 ulp")
    return "\n".join(lines) or "(none)"
