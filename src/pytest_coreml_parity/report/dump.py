"""Golden dumps (``--coreml-dump=DIR``): what a Mac job needs to replay a test.

Layout (format :data:`DUMP_FORMAT`, version :data:`DUMP_VERSION`; docs/ci.md)::

    DIR/
      index.json                 the session's dumps (written by the controller at the end)
      <test id stem>/
        manifest.json            format, version, the test, the program, the verdict settings,
                                 the dumped call's verdicts, and every file's size and sha256
        arrays.npz               input.<i>, torch.<j>, actual.<j> (no pickles)
        program/                 the saved Core AI program (coreai), or nothing: a Core ML
                                 package is shared (below), or the manifest's ``package``
                                 points into the disk cache
      packages/<sha256>/model.mlpackage/
                                 each distinct Core ML package once, named by its content's
                                 digest, shared by every test that ran it (the manifest's
                                 ``package.path`` is ``../packages/<sha256>/model.mlpackage``)

Each test dumps one call: the one that decided its verdict (the failing call, else the
call with the largest error over the allowed error). ``--coreml-dump-max-mb`` bounds the
folder: past it, a package becomes a pointer into the disk cache, and past that the
test is not dumped (its record says so). The bound is shared by xdist workers through a
lock file and a running total in the folder.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from .. import messages
from ._io import umask, write_atomic
from .files import report_stem
from .record import json_safe

DUMP_FORMAT = "pytest-coreml-parity-dump"
INDEX_FORMAT = "pytest-coreml-parity-dump-index"
DUMP_VERSION = 1
MANIFEST = "manifest.json"
INDEX = "index.json"
ARRAYS = "arrays.npz"
PACKAGE = "model.mlpackage"
PROGRAM = "program"
#: The folder of shared Core ML packages (one per distinct content).
PACKAGES = "packages"
#: The manifest's ``program`` field: which artifact the dump holds (replay picks its runner by it).
ARTIFACT_PACKAGE = "mlpackage"
ARTIFACT_COREAI_PROGRAM = "coreai-program"
_LOCK = ".dump.lock"
_TOTAL = ".dump-bytes"
MB = 1024 * 1024

try:  # POSIX; elsewhere the bound is best effort across xdist workers
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / _LOCK, "a+") as handle:
        if fcntl is not None:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            if fcntl is not None:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def tree_bytes(path: Path) -> int:
    """Bytes of the files under ``path`` (a file's own size)."""
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def tree_files(root: Path, prefix: str = "") -> list[dict[str, Any]]:
    """Every file under ``root``: ``prefix`` + relative path, size, sha256 (sorted)."""
    return [
        {"path": prefix + p.relative_to(root).as_posix(), "bytes": p.stat().st_size, "sha256": sha256(p)}
        for p in sorted(root.rglob("*"))
        if p.is_file()
    ]


#: :func:`tree_files` of packages this process dumped, by path and every file's size and
#: mtime: the tests of one model share its package, which is hashed once.
_HASHED: dict[tuple[Any, ...], list[dict[str, Any]]] = {}


def _package_files(source: Path) -> list[dict[str, Any]]:
    stamp = tuple(
        (p.relative_to(source).as_posix(), p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(source.rglob("*")) if p.is_file()
    )  # fmt: skip
    key = (str(source.resolve()), stamp)
    if key not in _HASHED:
        _HASHED[key] = tree_files(source)
    return _HASHED[key]


def tree_digest(files: list[dict[str, Any]]) -> str:
    """One digest of a tree's :func:`tree_files` (paths relative to the tree)."""
    digest = hashlib.sha256()
    for entry in files:
        digest.update(f"{entry['path']}\0{entry['bytes']}\0{entry['sha256']}\n".encode())
    return digest.hexdigest()


def file_list(folder: Path) -> list[dict[str, Any]]:
    """Every file under ``folder`` but the manifest: relative path, size, sha256."""
    return [
        {"path": p.relative_to(folder).as_posix(), "bytes": p.stat().st_size, "sha256": sha256(p)}
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != MANIFEST
    ]


def _package_source(model: Any) -> tuple[Path | None, bool]:
    """(where the model's program is on disk, whether that is a disk-cache entry)."""
    if model.program is not None:  # coreai
        cached = model.package_path is not None
        return Path(model.program.directory), cached
    if model.package_path is not None:
        return Path(model.package_path), True
    path = getattr(model.mlmodel, "package_path", None)
    return (Path(path), False) if path else (None, False)


def write_dump(
    directory: Path, model: Any, node_id: str, setup: Mapping[str, Any], max_mb: float
) -> dict[str, Any]:
    """Dump the deciding call of ``model``'s verdict log; the record's ``dump`` entry."""
    import numpy as np

    from ..verdict import Gates, judge
    from .record import worst_output

    log = model.verdicts
    rows = log.summary()
    decisive = worst_output({"outputs": rows})
    assert decisive is not None
    kept = log.kept[decisive["output"]]
    if model.stateful:
        return {"path": None, "bytes": 0, "package": "none", "note": "stateful model: not dumped"}
    gates = kept.judgement.gates
    names = list(model.output_names) or [f"#{j}" for j in range(len(kept.actual))]
    verdicts = []
    for name, got, want in zip(names, kept.actual, kept.expected, strict=False):
        judged = judge(np.asarray(got), np.asarray(want), gates)
        verdicts.append(
            {"output": name, "verdict": "pass" if judged.passed else "fail", "failed_gates": list(judged.failed)}
        )
    stem = report_stem(node_id)
    directory.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{stem[:40]}.", dir=directory))
    os.chmod(staging, 0o777 & ~umask())  # mkdtemp makes 0700; a CI artifact is shared
    try:
        arrays: dict[str, Any] = {}
        for i, x in enumerate(kept.inputs):
            arrays[f"input.{i}"] = np.asarray(x)
        for j, (got, want) in enumerate(zip(kept.actual, kept.expected, strict=False)):
            arrays[f"torch.{j}"] = np.asarray(want)
            arrays[f"actual.{j}"] = np.asarray(got)
        np.savez(staging / ARRAYS, **arrays)
        arrays_bytes = (staging / ARRAYS).stat().st_size
        source, cached = _package_source(model)
        package_bytes = tree_bytes(source) if source is not None and source.exists() else 0
        coreai = model.program is not None
        shared_files: list[dict[str, Any]] = []
        shared: Path | None = None
        if source is not None and source.exists() and not coreai:  # hashed outside the lock
            package_files = _package_files(source)
            shared = directory / PACKAGES / tree_digest(package_files) / PACKAGE
        with _locked(directory):
            total_file = directory / _TOTAL
            used = int(total_file.read_text() or 0) if total_file.exists() else 0
            limit = max_mb * MB
            added = 0  # bytes of a newly shared package
            if shared is not None and shared.exists():  # another test dumped the same package
                package_bytes = 0
            if source is not None and used + arrays_bytes + package_bytes <= limit:
                if coreai:
                    model.program.save(staging / PROGRAM)
                    package = {"kind": "copy", "path": PROGRAM}
                else:
                    assert shared is not None
                    if not shared.exists():
                        partial = Path(tempfile.mkdtemp(prefix=".package.", dir=directory))
                        shutil.copytree(source, partial / PACKAGE)
                        shared.parent.mkdir(parents=True, exist_ok=True)
                        os.replace(partial / PACKAGE, shared)
                        shutil.rmtree(partial, ignore_errors=True)
                        added = package_bytes
                    relative = f"../{shared.relative_to(directory).as_posix()}"
                    package = {"kind": "copy", "path": relative}
                    shared_files = [{**e, "path": f"{relative}/{e['path']}"} for e in package_files]
            elif source is not None and cached and used + arrays_bytes <= limit:
                package = {"kind": "cache", "path": str(source.resolve())}
            else:
                shutil.rmtree(staging, ignore_errors=True)
                note = messages.DUMP_OVER_BUDGET.format(
                    need=(arrays_bytes + package_bytes) / MB, limit=max_mb, used=used / MB
                )
                return {"path": None, "bytes": 0, "package": "none", "note": note}
            manifest = json_safe({
                "format": DUMP_FORMAT,
                "version": DUMP_VERSION,
                "nodeid": node_id,
                "model": setup.get("model"),
                "stack": model.stack.name,
                "program": ARTIFACT_COREAI_PROGRAM if coreai else ARTIFACT_PACKAGE,
                "precision": model.precision,
                "runner": setup.get("backend"),
                "profile": model.emulator_profile,
                "compute_units": model.options.compute_units,
                "function": model.settings.function,
                "package": package,
                "inputs": [
                    {"name": n, "dtype": d, "image": n in model.images}
                    for n, d in zip(model.input_names, model.input_dtypes, strict=False)
                ],
                "outputs": names,
                "gates": {"rtol": gates.rtol, "atol": gates.atol,
                          **{k: getattr(gates, k) for k in Gates.__dataclass_fields__ if k not in ("rtol", "atol")}},
                "verdicts": verdicts,
                "arrays": ARRAYS,
                "files": file_list(staging) + shared_files,
            })  # fmt: skip
            (staging / MANIFEST).write_text(json.dumps(manifest, indent=1, allow_nan=False) + "\n")
            final = directory / stem
            written = tree_bytes(staging)
            if final.exists():
                used -= tree_bytes(final)
                shutil.rmtree(final)
            os.replace(staging, final)
            total_file.write_text(str(max(used, 0) + written + added))
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return {"path": stem, "bytes": written + added, "package": package["kind"], "note": None}


def write_index(directory: Path, document: Mapping[str, Any]) -> Path:
    """``DIR/index.json``: every dumped test of the session (the controller writes it)."""
    dumps = []
    for test in document["tests"]:
        dump = test.get("dump") or {}
        if dump.get("path"):
            dumps.append({"nodeid": test["nodeid"], "path": dump["path"], "outcome": test["outcome"],
                          "bytes": dump.get("bytes"), "package": dump.get("package")})  # fmt: skip
    index = {"format": INDEX_FORMAT, "version": DUMP_VERSION, "dumps": dumps}
    path = directory / INDEX
    write_atomic(path, json.dumps(index, indent=1) + "\n")
    return path


__all__ = [
    "ARRAYS", "DUMP_FORMAT", "DUMP_VERSION", "INDEX", "MANIFEST", "PACKAGE", "PACKAGES", "PROGRAM",
    "file_list", "sha256", "tree_bytes", "tree_digest", "tree_files", "write_dump", "write_index",
]
