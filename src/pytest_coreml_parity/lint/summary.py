"""The session's lint summary line, from the findings each test's report carried."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from .. import messages


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


__all__ = ["summary_line"]
