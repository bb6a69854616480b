"""``python -m tools.zoo``: list the zoo, or run it and write docs/zoo.md and its JSON.

Examples::

    python -m tools.zoo list
    python -m tools.zoo run                                   # everything (35-60 min on 2 cores)
    python -m tools.zoo run --models resnet18 hf/bert --out /tmp/zoo.md --json /tmp/zoo.json
    python -m tools.zoo run --libraries timm --precisions fp32 --out /tmp/t.md --json /tmp/t.json
    python -m tools.zoo render                                # docs/zoo.md from docs/zoo.json
"""

from __future__ import annotations

import argparse
import datetime as _dt
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from .registry import LIBRARIES, select
from .render import read_json, write_json, write_markdown
from .results import ModelResult
from .run import DEFAULT_TIMEOUT, REPO, run_models

#: Where a full run writes zoo.md and zoo.json.
DOCS = REPO / "docs"
#: The packages whose versions a run records.
VERSIONED = ("torch", "coremltools", "numpy", "torchvision", "timm", "transformers")


def _versions() -> dict[str, str]:
    out = {}
    for name in VERSIONED:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "absent"
    return out


def _commit() -> str:
    try:
        return subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _progress(result: ModelResult) -> None:
    cells = []
    for precision, slot in result.precisions.items():
        ratio = f" {slot.ratio:.2f}x" if slot.ratio is not None else ""
        stage = f"/{slot.stage}" if slot.stage else ""
        cells.append(f"{precision} {slot.verdict}{stage}{ratio}")
    wall = f"{result.wall_s:.0f}s" if result.wall_s is not None else ""
    print(f"{result.name:40s} {wall:>6s}  " + "  ".join(cells), flush=True)
    for precision, slot in result.precisions.items():
        if slot.cause:
            print(f"    {precision}: {slot.cause}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.zoo", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="the zoo's models")
    run = sub.add_parser("run", help="run models and write the results")
    run.add_argument("--models", nargs="+", metavar="NAME", help="these models (default: all)")
    run.add_argument("--libraries", nargs="+", choices=LIBRARIES, help="the models of these libraries")
    run.add_argument("--precisions", default="fp32,fp16", help="comma-separated (default: fp32,fp16)")
    run.add_argument("--out", type=Path, help="markdown page to update (default: docs/zoo.md, full runs only)")
    run.add_argument("--json", type=Path, help="raw results (default: docs/zoo.json, full runs only)")
    run.add_argument("--workdir", type=Path, help="keep the generated test files and logs here")
    run.add_argument("--cache-dir", help="conversion cache (default: a fresh one per model)")
    run.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help="seconds per model")
    render = sub.add_parser("render", help="rewrite the markdown from a JSON of results")
    render.add_argument("--json", type=Path, default=DOCS / "zoo.json")
    render.add_argument("--out", type=Path, default=DOCS / "zoo.md")
    args = parser.parse_args(argv)

    if args.command == "list":
        for entry in select():
            print(f"{entry.name:40s} {entry.library:13s} {entry.family:20s} {entry.notes}")
        return 0
    if args.command == "render":
        stored, stored_meta = read_json(args.json)
        write_markdown(args.out, stored, stored_meta)
        return 0
    entries = select(args.models, args.libraries)
    partial = len(entries) < len(select())
    if partial and (args.out is None or args.json is None):
        parser.error("a partial run would replace the whole zoo table: give --out and --json")
    out = args.out if args.out is not None else DOCS / "zoo.md"
    json_path = args.json if args.json is not None else DOCS / "zoo.json"
    precisions = [p.strip() for p in args.precisions.split(",") if p.strip()]
    start, commit = time.perf_counter(), _commit()  # the code the run starts from
    results = run_models(
        entries, precisions=precisions, workdir=args.workdir, cache_dir=args.cache_dir,
        timeout=args.timeout, on_result=_progress,
    )  # fmt: skip
    meta: dict[str, Any] = {
        "date": _dt.date.today().isoformat(),
        "commit": commit,
        "versions": _versions(),
        "python": sys.version.split()[0],
        "precisions": precisions,
        "models": len(results),
        "wall_s": round(time.perf_counter() - start, 1),
    }
    write_json(json_path, results, meta)
    write_markdown(out, results, meta)
    print(f"wrote {out} and {json_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
