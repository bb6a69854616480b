"""The session's lint summary, from the findings each test's report carried."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from .. import messages

#: Distinct findings listed under the session line; the rest are counted.
SHOWN = 10


def summary_line(per_test: Sequence[tuple[str, Sequence[dict[str, Any]]]]) -> str:
    """``lint: 3 finding(s) in 2 test(s): coreml-rms-norm-eps (2), coreml-triu-mask-nan (1)``."""
    rules: Counter[str] = Counter()
    count = 0
    for _node, findings in per_test:
        for finding in findings:
            rules[str(finding["rule"])] += 1
            count += 1
    shown = ", ".join(f"{rule} ({n})" for rule, n in rules.most_common())
    return messages.LINT_SUMMARY.format(count=count, tests=len(per_test), rules=shown)


def finding_lines(per_test: Sequence[tuple[str, Sequence[dict[str, Any]]]], shown: int = SHOWN) -> list[str]:
    """One line per distinct finding (rule and where), with the tests it was found in.

    The same program bound by many tests (parametrized, every precision) is one
    finding here; the full text is each test's ``coreml-parity lint`` report section.
    """
    tests: dict[tuple[str, str], list[str]] = {}
    for node, findings in per_test:
        for finding in findings:
            where = finding.get("torch_line") or f"{finding['op_type']} {finding['op']}"
            tests.setdefault((str(finding["rule"]), str(where)), []).append(node)
    lines = [
        messages.LINT_FINDING_LINE.format(rule=rule, where=where, count=len(nodes), first=nodes[0])
        for (rule, where), nodes in list(tests.items())[:shown]
    ]
    if len(tests) > shown:
        lines.append(messages.LINT_MORE.format(count=len(tests) - shown))
    return lines


__all__ = ["SHOWN", "finding_lines", "summary_line"]
