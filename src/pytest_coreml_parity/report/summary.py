"""The markdown summary for CI pages (``--coreml-summary=PATH``).

Made from the session's report document (:mod:`.session`), so it says nothing the JSON
does not: the totals, a table of the failures with the op that departed, its torch
line and the fix, the tests closest to fp16's 65504 (the worst headroom), and the lint
findings (rule, where, how many tests, source). A GitHub
job appends the file to ``$GITHUB_STEP_SUMMARY`` (docs/ci.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .. import messages

#: Rows of the worst-headroom table.
HEADROOM_ROWS = 5
#: Rows of the lint table (distinct rule and place).
LINT_ROWS = 20
#: A table cell longer than this is cut (the JSON report has the whole text).
CELL = 400


def cell(text: Any) -> str:
    """``text`` safe in one markdown table cell: pipes escaped, lines joined, cut."""
    if text is None or text == "":
        return "—"
    value = " ".join(str(text).split())
    if len(value) > CELL:
        value = value[: CELL - 1] + "…"
    return value.replace("|", "\\|")


def _code(text: Any) -> str:
    return "—" if not text else f"`{cell(text).replace('`', chr(39))}`"


def markdown(document: Mapping[str, Any]) -> str:
    """The summary page of one session's report document."""
    totals = document["totals"]
    tests = document["tests"]
    parity = [t for t in tests if t.get("model") is not None]
    shown = ", ".join(
        f"{totals[k]} {k}" for k in ("passed", "failed", "error", "skipped", "xfailed", "xpassed") if totals[k]
    )
    lines = [f"## {messages.SUMMARY_TITLE}", ""]
    lines.append(f"{totals['tests']} tests ({shown or 'none ran'}); {len(parity)} ran a converted model.")
    env = document["environment"]
    lines.append(
        f"coremltools {env.get('coremltools')}, torch {env.get('torch')}, "
        f"backend {document['settings']['backend']}, emulator profile {document['settings']['emulator_profile']}."
    )
    lines.append("")
    failed = [t for t in tests if t["outcome"] in ("failed", "error")]
    if failed:
        lines += ["### Failures", "", "| test | precision | op | torch line | fix |", "| --- | --- | --- | --- | --- |"]
        for t in failed:
            d = t.get("diagnosis") or {}
            where = f"{d['op_type']} {d['op']}" if d.get("op") else None
            fix = d.get("fix") or t.get("message")
            lines.append(
                f"| {_code(t['nodeid'])} | {cell(t.get('precision'))} | {_code(where)} | "
                f"{_code(d.get('source'))} | {cell(fix)} |"
            )
        lines.append("")
    else:
        lines += ["No failures.", ""]
    rows = _headroom_rows(parity)
    if rows:
        lines += [
            "### Worst headroom (fp16 ops closest to 65504)", "",
            "| test | op | peak | margin | torch line |", "| --- | --- | --- | --- | --- |",
        ]  # fmt: skip
        for t, op in rows[:HEADROOM_ROWS]:
            margin = "overflowed" if op.get("overflowed") else f"{_num(op.get('margin'))}x"
            lines.append(
                f"| {_code(t['nodeid'])} | {_code(op.get('op_type', '') + ' ' + op.get('name', ''))} | "
                f"{_num(op.get('peak'))} | {margin} | {_code(op.get('source'))} |"
            )
        lines.append("")
    findings = _lint_rows(tests)
    if findings:
        lines += [
            "### Lint findings (documented device hazards; docs/lint.md)", "",
            "| rule | where | tests | source |", "| --- | --- | --- | --- |",
        ]  # fmt: skip
        for (rule, where, sources), count in list(findings.items())[:LINT_ROWS]:
            lines.append(f"| {_code(rule)} | {_code(where)} | {count} | {cell(sources)} |")
        if len(findings) > LINT_ROWS:
            lines.append(f"\n{len(findings) - LINT_ROWS} more in the JSON report.")
        lines.append("")
    slow = _conversion_seconds(parity)
    if slow:
        lines.append(f"Conversion: {slow}.")
        lines.append("")
    return "\n".join(lines)


def _lint_rows(tests: list[Mapping[str, Any]]) -> dict[tuple[str, str, str], int]:
    """(rule, where, sources) -> how many tests found it; a program shared by tests is one row."""
    rows: dict[tuple[str, str, str], int] = {}
    for t in tests:
        for f in t.get("lint") or ():
            where = f.get("torch_line") or f"{f.get('op_type')} {f.get('op')}"
            key = (str(f.get("rule")), str(where), ", ".join(f.get("sources") or ()))
            rows[key] = rows.get(key, 0) + 1
    return rows


def _num(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, (int, float)) else str(value)


def _headroom_rows(tests: list[Mapping[str, Any]]) -> list[tuple[Mapping[str, Any], Mapping[str, Any]]]:
    rows = []
    for t in tests:
        headroom = t.get("headroom") or {}
        ops = headroom.get("ops") or []
        if ops:
            rows.append((t, ops[0]))

    def key(row: tuple[Mapping[str, Any], Mapping[str, Any]]) -> tuple[bool, float]:
        op = row[1]
        peak = op.get("peak")
        return bool(op.get("overflowed")), float(peak) if isinstance(peak, (int, float)) else 0.0

    return sorted(rows, key=key, reverse=True)


def _conversion_seconds(tests: list[Mapping[str, Any]]) -> str:
    conversions = [t["conversion"] for t in tests if t.get("conversion")]
    if not conversions:
        return ""
    converted = [c for c in conversions if c.get("event") == "converted"]
    cached = sum(1 for c in conversions if c.get("cached"))
    total = sum(float(c.get("seconds") or 0.0) for c in converted)
    return f"{len(converted)} converted ({total:.1f} s), {cached} from cache"


__all__ = ["cell", "markdown"]
