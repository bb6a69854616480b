"""``coreml-parity-lint Model.mlpackage``: lint a built package on its own.

Exit status: 0 without findings, 1 with findings, 2 on bad usage or an unreadable
package. ``--json`` prints the findings as JSON; ``--rules`` lists the rules.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

COMPUTE_UNITS = ("ALL", "CPU_ONLY", "CPU_AND_GPU", "CPU_AND_NE")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="coreml-parity-lint", description="Check a built .mlpackage for documented Core ML device hazards."
    )
    parser.add_argument("packages", nargs="*", metavar="PACKAGE", help="path to a .mlpackage")
    parser.add_argument("--compute-units", default="ALL", choices=COMPUTE_UNITS, help="where it will run. Default: ALL")
    parser.add_argument("--precision", default=None, help="the precision it was built at, if known (fp16, fp32, ...)")
    parser.add_argument("--function", default=None, help="the function of a multi-function package. Default: main")
    parser.add_argument("--json", action="store_true", help="print the findings as JSON")
    parser.add_argument("--rules", action="store_true", help="list the rules and their sources, then exit")
    args = parser.parse_args(argv)

    from . import all_rules, findings_json, lint_package

    if args.rules:
        for rule in all_rules():
            print(f"{rule.id} [{rule.stack}]: {rule.title}\n    applies: {rule.applies}\n    source: {', '.join(rule.sources)}")
        return 0
    if not args.packages:
        parser.error("give a .mlpackage to lint (or --rules)")
    everything: dict[str, list[dict[str, object]]] = {}
    status = 0
    for path in args.packages:
        try:
            found = lint_package(path, compute_units=args.compute_units, precision=args.precision, function=args.function)
        except Exception as exc:
            print(f"coreml-parity-lint: cannot lint {path}: {type(exc).__name__}: {exc}", file=sys.stderr)
            return 2
        everything[path] = findings_json(found)
        status = max(status, 1 if found else 0)
        if not args.json:
            print(f"{path}: {len(found)} finding(s)")
            for finding in found:
                print(finding.text())
    if args.json:
        print(json.dumps(everything, indent=2))
    return status


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
