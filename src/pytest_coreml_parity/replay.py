"""``python -m pytest_coreml_parity.replay DIR``: replay golden dumps (``--coreml-dump``).

On macOS, on the real Core ML runtime for each compute unit; everywhere, through the
emulator's profiles (and Apple's Core AI interpreter for coreai dumps). Writes
``DIR/replay.json`` (``--output`` to choose), prints the verdicts and the emulator-
fidelity table. Exit status: 0 when every dump's own runner reproduces its verdict,
1 when one does not, 2 when a folder is not a usable dump (the message says why).
See docs/ci.md and :mod:`pytest_coreml_parity.report.replay`.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pytest_coreml_parity.replay",
        description="Replay pytest-coreml-parity golden dumps and write an emulator-fidelity report.",
    )
    parser.add_argument("directory", type=Path, help="a --coreml-dump folder (or one test's dump)")
    parser.add_argument("--output", type=Path, default=None, help="the JSON report (default: DIR/replay.json)")
    args = parser.parse_args(argv)
    from .errors import DumpError
    from .report.replay import REPLAY_REPORT, replay, text

    try:
        report = replay(args.directory)
    except DumpError as exc:
        print(f"replay: {exc}", file=sys.stderr)
        return 2
    output = args.output if args.output is not None else args.directory / REPLAY_REPORT
    from .report._io import write_atomic

    write_atomic(output, json.dumps(report, indent=1, allow_nan=False) + "\n")
    for line in text(report):
        print(line)
    print(f"report: {output}")
    return 1 if report["mismatched"] else 0


if __name__ == "__main__":
    sys.exit(main())
