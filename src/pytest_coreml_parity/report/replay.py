"""Replay golden dumps (``python -m pytest_coreml_parity.replay DIR``).

Every dumped program runs on every runner this machine has:

* Core ML dumps: the emulator under each profile (``typed``, ``float32``,
  ``fp16-sequential``) everywhere; on macOS also the real Core ML runtime for each
  compute unit (``CPU_ONLY``, ``CPU_AND_GPU``, ``ALL``).
* Core AI dumps: Apple's Core AI interpreter (the isolated worker).

Each run is judged against torch's dumped outputs with the dump's own gates (the verdict
the test used), and compared with the outputs the dump recorded. The dump's own runner
and profile must reproduce the dumped verdict (``matches_dump``). The emulator-fidelity
table (:mod:`.fidelity`) says how far each observed run (a device unit, and the dump's
recorded outputs) was from each emulator profile, per op family.

A missing, foreign, damaged or newer-format dump raises :class:`~..errors.DumpError`
with the path and what is wrong; the command prints it and exits 2.
"""

from __future__ import annotations

import json
import math
import sys
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import messages
from ..errors import DumpError
from .dump import (
    ARRAYS,
    ARTIFACT_COREAI_PROGRAM,
    DUMP_FORMAT,
    DUMP_VERSION,
    INDEX,
    INDEX_FORMAT,
    MANIFEST,
    sha256,
)
from .fidelity import distance, families, table, table_lines
from .record import json_safe

REPLAY_FORMAT = "pytest-coreml-parity-replay"
REPLAY_VERSION = 1
#: The report replay writes into the dump folder unless told otherwise.
REPLAY_REPORT = "replay.json"
#: Compute units replayed on the Core ML runtime (macOS).
COMPUTE_UNITS = ("CPU_ONLY", "CPU_AND_GPU", "ALL")
_REQUIRED = ("nodeid", "stack", "program", "precision", "runner", "profile", "package", "inputs",
             "outputs", "gates", "verdicts", "arrays", "files")  # fmt: skip


@dataclass
class Dump:
    """One dump folder, verified and loaded."""

    folder: Path
    manifest: dict[str, Any]
    program_path: Path
    inputs: list[Any]
    torch: list[Any]
    actual: list[Any]


# ------------------------------------------------------------------ finding and loading


def find_dumps(root: Path) -> list[Path]:
    """The dump folders under ``root``: itself, those its index lists, or its subfolders."""
    root = Path(root)
    if not root.is_dir():
        raise DumpError(messages.REPLAY_NOT_A_DUMP.format(path=root, manifest=MANIFEST))
    if (root / MANIFEST).is_file():
        return [root]
    index = root / INDEX
    if index.is_file():
        data = _read_json(index)
        if not isinstance(data, dict) or data.get("format") != INDEX_FORMAT:
            raise DumpError(messages.REPLAY_FOREIGN.format(path=root, manifest=INDEX, why="no dump-index format"))
        if data.get("version") != DUMP_VERSION:
            raise DumpError(messages.REPLAY_VERSION.format(path=index, got=data.get("version"), want=DUMP_VERSION))
        try:
            folders = [root / str(entry["path"]) for entry in data["dumps"]]
        except (KeyError, TypeError):
            raise DumpError(messages.REPLAY_CORRUPT.format(path=index, why="malformed dumps list")) from None
    else:
        folders = sorted(p.parent for p in root.glob(f"*/{MANIFEST}"))
    if not folders:
        raise DumpError(messages.REPLAY_EMPTY.format(path=root, index=INDEX, manifest=MANIFEST))
    return folders


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise DumpError(messages.REPLAY_CORRUPT.format(path=path, why=f"unreadable JSON ({exc})")) from None


def load_dump(folder: Path) -> Dump:
    """Read and verify one dump folder (format, version, files, arrays)."""
    import numpy as np

    folder = Path(folder)
    path = folder / MANIFEST
    if not path.is_file():
        raise DumpError(messages.REPLAY_NOT_A_DUMP.format(path=folder, manifest=MANIFEST))
    manifest = _read_json(path)
    if not isinstance(manifest, dict) or manifest.get("format") != DUMP_FORMAT:
        got = manifest.get("format") if isinstance(manifest, dict) else type(manifest).__name__
        raise DumpError(messages.REPLAY_FOREIGN.format(path=folder, manifest=MANIFEST, why=f"format {got!r}"))
    if manifest.get("version") != DUMP_VERSION:
        raise DumpError(messages.REPLAY_VERSION.format(path=folder, got=manifest.get("version"), want=DUMP_VERSION))
    missing = [key for key in _REQUIRED if key not in manifest]
    if missing:
        raise DumpError(messages.REPLAY_CORRUPT.format(path=folder, why=f"{MANIFEST} lacks {', '.join(missing)}"))
    try:
        for entry in manifest["files"]:
            file = folder / str(entry["path"])
            if not file.is_file():
                raise DumpError(messages.REPLAY_CORRUPT.format(path=folder, why=f"{entry['path']} is missing"))
            if file.stat().st_size != entry["bytes"] or sha256(file) != entry["sha256"]:
                raise DumpError(messages.REPLAY_CORRUPT.format(path=folder, why=f"{entry['path']} fails its size or sha256"))
        package = manifest["package"]
        program_path = folder / package["path"] if package["kind"] == "copy" else Path(package["path"])
    except (KeyError, TypeError):
        raise DumpError(messages.REPLAY_CORRUPT.format(path=folder, why=f"malformed {MANIFEST}")) from None
    if not program_path.exists():
        raise DumpError(messages.REPLAY_CORRUPT.format(
            path=folder, why=f"its program {program_path} is gone (a pointer into a disk cache that was cleared?)"))  # fmt: skip
    try:
        with np.load(folder / str(manifest["arrays"]), allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise DumpError(messages.REPLAY_CORRUPT.format(path=folder, why=f"{ARRAYS} does not load ({exc})")) from None
    n_in, n_out = len(manifest["inputs"]), len(manifest["outputs"])
    try:
        inputs = [arrays[f"input.{i}"] for i in range(n_in)]
        torch = [arrays[f"torch.{j}"] for j in range(n_out)]
        actual = [arrays[f"actual.{j}"] for j in range(n_out)]
    except KeyError as exc:
        raise DumpError(messages.REPLAY_CORRUPT.format(path=folder, why=f"{ARRAYS} lacks {exc.args[0]}")) from None
    return Dump(folder, manifest, program_path, inputs, torch, actual)


# ------------------------------------------------------------------ running


Runner = Callable[[dict[str, Any]], Mapping[str, Any]]


def _feed(dump: Dump) -> dict[str, Any]:
    import numpy as np

    feed = {}
    for spec, value in zip(dump.manifest["inputs"], dump.inputs, strict=True):
        dtype = spec.get("dtype")
        feed[spec["name"]] = value if spec.get("image") or dtype is None else value.astype(dtype)
    del np
    return feed


def _runners(dump: Dump) -> tuple[dict[str, Runner], dict[str, Runner], list[str]]:
    """(emulator profiles, observed units, op types) this machine can run the dump on."""
    m = dump.manifest
    if m["program"] == ARTIFACT_COREAI_PROGRAM:
        from ..coreai.program import CoreAIProgram

        program = CoreAIProgram.load(dump.program_path)
        ops = [op.op_type for op in program.ops]
        return {}, {"coreai-interpreter": lambda feed: program.run(feed)}, ops
    from .._coremltools import import_coremltools
    from ..emulator import emulate
    from ..headroom import emulator_for
    from ..settings import EMULATOR_PROFILES

    ct = import_coremltools()
    function = m.get("function") or "main"
    kwargs = {"function_name": m["function"]} if m.get("function") else {}
    mlmodel = ct.models.MLModel(str(dump.program_path), skip_model_load=True, **kwargs)
    ops = [op.op_type for op in emulator_for(mlmodel).ops] if function == "main" else []

    def emulator(profile: str) -> Runner:
        def run(feed: dict[str, Any]) -> Mapping[str, Any]:
            import numpy as np

            with np.errstate(over="ignore"):  # float32-held values past 65504 become fp16 inf outputs
                return emulate(mlmodel, feed, function_name=function, fp16_execution=profile)

        return run

    profiles = {f"emulator:{p}": emulator(p) for p in EMULATOR_PROFILES}
    observed: dict[str, Runner] = {}
    from ..backends import coreml_unavailable_reason

    if coreml_unavailable_reason() is None:  # macOS with the runtime: every compute unit
        for unit in COMPUTE_UNITS:
            device = ct.models.MLModel(str(dump.program_path), compute_units=getattr(ct.ComputeUnit, unit), **kwargs)
            observed[f"coreml:{unit}"] = _device(device, dump)
    return profiles, observed, ops


def _device(mlmodel: Any, dump: Dump) -> Runner:
    import numpy as np

    images = {spec["name"] for spec in dump.manifest["inputs"] if spec.get("image")}

    def run(feed: dict[str, Any]) -> Mapping[str, Any]:
        full = dict(feed)
        if images:
            from PIL import Image

            for name in images:
                pixels = np.asarray(full[name])
                full[name] = Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels)
        return {k: np.asarray(v) for k, v in mlmodel.predict(full).items()}

    return run


def _judge(dump: Dump, outputs: Sequence[Any]) -> dict[str, Any]:
    import numpy as np

    from ..verdict import Gates, judge

    values: dict[str, Any] = {k: (None if v == "off" else v) for k, v in dump.manifest["gates"].items()}
    gates = Gates(**values)
    rows = []
    for name, got, want in zip(dump.manifest["outputs"], outputs, dump.torch, strict=True):
        g = np.asarray(got, dtype=np.float32) if np.asarray(got).dtype == np.float16 else np.asarray(got)
        j = judge(g.reshape(np.asarray(want).shape) if g.size == np.asarray(want).size else g, want, gates)
        m = j.metrics
        rows.append({"output": name, "verdict": "pass" if j.passed else "fail", "failed_gates": list(j.failed),
                     "snr": m.snr, "max_abs": m.max_abs, "cosine": m.cosine})  # fmt: skip
    return {"verdict": "fail" if any(r["verdict"] == "fail" for r in rows) else "pass", "outputs": rows}


def replay_dump(dump: Dump) -> dict[str, Any]:
    """Every run of one dump: verdicts, agreement with the dump, and fidelity rows."""
    m = dump.manifest
    profiles, observed, ops = _runners(dump)
    feed = _feed(dump)
    names = m["outputs"]
    outputs: dict[str, list[Any]] = {}
    for label, run in {**profiles, **observed}.items():
        result = run(dict(feed))
        outputs[label] = [result[name] for name in names]
    dumped_verdict = "fail" if any(v["verdict"] == "fail" for v in m["verdicts"]) else "pass"
    own = f"emulator:{m['profile']}" if m["runner"] == "emulator" else (
        "coreai-interpreter" if m["program"] == ARTIFACT_COREAI_PROGRAM else None)  # fmt: skip
    runs = []
    for label, outs in outputs.items():
        judged = _judge(dump, outs)
        same = distance(outs, dump.actual, dump.torch)
        runs.append({
            "runner": label,
            **judged,
            "vs_dump": same,
            "matches_dump": judged["verdict"] == dumped_verdict if label == own else None,
        })  # fmt: skip
    # Observed: the device units run here, and the outputs the dump recorded (its runner).
    seen = {f"coreml:{unit}": outs for unit, outs in
            ((label.split(":", 1)[1], o) for label, o in outputs.items() if label.startswith("coreml:"))}  # fmt: skip
    seen[f"dumped:{m['runner']}"] = dump.actual
    fidelity = []
    if profiles:
        for unit, outs in seen.items():
            by_profile = {label.split(":", 1)[1]: distance(outs, outputs[label], dump.torch) for label in profiles}
            closest = min(by_profile, key=lambda p: by_profile[p]["rel_rms"])
            fidelity.append({"unit": unit, "profiles": by_profile, "closest": closest})
    return {
        "nodeid": m["nodeid"], "path": str(dump.folder), "stack": m["stack"], "precision": m["precision"],
        "dumped_runner": m["runner"], "dumped_profile": m["profile"], "dumped_verdict": dumped_verdict,
        "own_runner": own, "op_families": families(ops), "runs": runs, "fidelity": fidelity,
    }  # fmt: skip


def _cache_pointer_gone(folder: Path) -> str | None:
    """Why a dump cannot run here because its package is a pointer into a disk cache this
    machine does not have (a dump past ``--coreml-dump-max-mb``, replayed elsewhere), or None."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
        package = manifest["package"]
        if package["kind"] == "cache" and not Path(package["path"]).exists():
            return messages.REPLAY_POINTER_SKIPPED.format(path=folder, pointer=package["path"])
    except (OSError, ValueError, KeyError, TypeError):
        return None  # load_dump says what is wrong
    return None


def replay(root: Path) -> dict[str, Any]:
    """Replay every dump under ``root`` (each verified before any runs).

    A dump whose package points into a disk cache that is not here is skipped (listed in
    ``skipped``) when other dumps can run; alone, it is an error like any unusable dump.
    """
    folders = find_dumps(root)
    skipped = []
    for folder in folders:
        why = _cache_pointer_gone(folder)
        if why is not None and len(folders) > 1:
            skipped.append({"path": str(folder), "why": why})
    gone = {entry["path"] for entry in skipped}
    dumps = [load_dump(folder) for folder in folders if str(folder) not in gone]
    if not dumps:
        raise DumpError(skipped[0]["why"])
    results = [replay_dump(dump) for dump in dumps]
    matched = [r for r in results if any(run["matches_dump"] is False for run in r["runs"])]
    report: dict[str, Any] = json_safe({
        "format": REPLAY_FORMAT, "version": REPLAY_VERSION, "platform": sys.platform,
        "dumps": results, "fidelity": table(results), "mismatched": [r["nodeid"] for r in matched],
        "skipped": skipped,
    })  # fmt: skip
    return report


def text(report: Mapping[str, Any]) -> list[str]:
    """What the command prints: per dump its verdicts, then the fidelity table."""
    lines = [f"replayed {len(report['dumps'])} dump(s) on {report['platform']}"]
    for d in report["dumps"]:
        lines.append(f"{d['nodeid']} [{d['stack']}-{d['precision']}], dumped {d['dumped_verdict']} on {d['dumped_runner']}:")
        for run in d["runs"]:
            agree = {True: " (matches the dump)", False: " (DIFFERS from the dump)", None: ""}[run["matches_dump"]]
            same = run["vs_dump"]
            lines.append(
                f"  {run['runner']:<28} {run['verdict']}{agree}; vs dumped outputs: "
                f"{'identical' if same['identical'] == 1.0 else 'rel_rms ' + _num(same['rel_rms'])}"
            )
    if report["fidelity"]:
        lines.append("emulator fidelity (rel. rms distance of each observed run to each profile, per op family):")
        rows = [{**r, "profiles": {k: {**v, "worst_rel_rms": _float(v["worst_rel_rms"])}
                                    for k, v in r["profiles"].items()}} for r in report["fidelity"]]  # fmt: skip
        lines.extend(table_lines(rows))
    for entry in report.get("skipped", ()):
        lines.append(f"skipped: {entry['why']}")
    if report["mismatched"]:
        lines.append(f"verdicts differ from the dump for: {', '.join(report['mismatched'])}")
    return lines


def _float(value: Any) -> float:
    return float(value)  # json_safe's "inf" / "nan" strings parse too


def _num(value: Any) -> str:
    number = _float(value)
    return "inf" if math.isinf(number) else f"{number:.3g}"


__all__ = ["COMPUTE_UNITS", "REPLAY_REPORT", "Dump", "find_dumps", "load_dump", "replay", "replay_dump", "text"]
