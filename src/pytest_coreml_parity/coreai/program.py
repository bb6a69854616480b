"""A converted Core AI program on disk: the ``.aimodel`` asset plus what the plugin needs.

A program is a directory::

    <dir>/model.aimodel/   the asset coreai-core wrote (main.mlirb, main.hash, metadata.json)
    <dir>/coreai.json      precision, I/O names/shapes/dtypes, torch output structure, op table

so the disk cache can store and verify it like any other entry, and a worker process
can run it from its path alone. Nothing here imports coreai, torch or the worker at
module import.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._values import to_numpy
from ..errors import CacheEntryError, InputMismatchError

if TYPE_CHECKING:
    import numpy as np

FORMAT_VERSION = 1
META_NAME = "coreai.json"
ASSET_NAME = "model.aimodel"
PRECISIONS: tuple[str, ...] = ("fp32", "fp16", "mixed")


@dataclass(frozen=True)
class TensorSpec:
    """One input or output of the program's ``main`` function, as the asset declares it."""

    name: str
    shape: tuple[int, ...]
    dtype: str  # numpy spelling: "float32", "float16", "int32", ...


@dataclass(frozen=True)
class OpInfo:
    """One Core AI op of the converted program, from its debug info.

    ``op_id`` is the ``coreai`` op id the interpreter's intermediate logger reports;
    ``source_line`` is ``"path.py:LINE"`` in the user's model code (torch frames excluded);
    ``torch_node``/``torch_target`` name the exported-program node it was lowered from,
    when coreai-torch's mapping resolves one (``"mul_2"``, ``"aten.mul.Tensor"``).
    """

    op_id: int
    op_type: str
    source_line: str | None = None
    torch_node: str | None = None
    torch_target: str | None = None


# --- torch output structure, encoded as JSON --------------------------------------------


def flatten_structure(obj: Any) -> tuple[list[Any], Any]:
    """Leaves of nested tuples/lists/dicts (str keys) in order, and a JSON-able tree."""
    leaves: list[Any] = []

    def encode(node: Any) -> Any:
        if isinstance(node, tuple):
            return {"tuple": [encode(item) for item in node]}
        if isinstance(node, list):
            return {"list": [encode(item) for item in node]}
        if isinstance(node, dict):
            return {"dict": [[str(key), encode(value)] for key, value in node.items()]}
        leaves.append(node)
        return {"leaf": len(leaves) - 1}

    return leaves, encode(obj)


def unflatten_structure(tree: Any, leaves: Sequence[Any]) -> Any:
    """Inverse of :func:`flatten_structure` (tuples stay tuples, dicts keep their order)."""
    if "leaf" in tree:
        return leaves[int(tree["leaf"])]
    if "tuple" in tree:
        return tuple(unflatten_structure(item, leaves) for item in tree["tuple"])
    if "list" in tree:
        return [unflatten_structure(item, leaves) for item in tree["list"]]
    return {key: unflatten_structure(value, leaves) for key, value in tree["dict"]}


# --- the program --------------------------------------------------------------------------


def _asset_digest_ok(asset: Path) -> bool:
    """True when main.hash is the sha256 of main.mlirb, as coreai-core's save_asset wrote it."""
    bytecode, digest = asset / "main.mlirb", asset / "main.hash"
    if not (bytecode.is_file() and digest.is_file()):
        return False
    return hashlib.sha256(bytecode.read_bytes()).digest() == digest.read_bytes()


class CoreAIProgram:
    """A Core AI program converted from a torch model, runnable through the isolated worker.

    Calling it runs the interpreter in the worker process (see :mod:`.worker`) and returns
    numpy arrays in the torch model's output structure, in the dtypes the program declares
    (float16 for ``fp16`` and ``mixed``: coreai-opt's casting makes the I/O fp16 too).
    """

    def __init__(self, directory: Path, meta: Mapping[str, Any], *, owned: bool = False) -> None:
        self.directory = Path(directory)
        self.meta: dict[str, Any] = dict(meta)
        self.precision: str = str(meta["precision"])
        self.fp32_ops: frozenset[str] = frozenset(meta.get("fp32_ops") or ())
        self.inputs: tuple[TensorSpec, ...] = tuple(
            TensorSpec(str(t["name"]), tuple(int(d) for d in t["shape"]), str(t["dtype"]))
            for t in meta["inputs"]
        )
        self.outputs: tuple[TensorSpec, ...] = tuple(
            TensorSpec(str(t["name"]), tuple(int(d) for d in t["shape"]), str(t["dtype"]))
            for t in meta["outputs"]
        )
        self.output_tree: Any = meta["output_tree"]
        self.ops: tuple[OpInfo, ...] = tuple(OpInfo(**op) for op in meta.get("ops", ()))
        self._finalizer = (
            weakref.finalize(self, shutil.rmtree, str(self.directory), True) if owned else None
        )

    def __repr__(self) -> str:
        return f"<CoreAIProgram {self.precision} {len(self.ops)} ops at {self.directory}>"

    @property
    def asset_path(self) -> Path:
        return self.directory / ASSET_NAME

    @property
    def name(self) -> str:
        """What error messages call this program."""
        model = self.meta.get("model") or "model"
        return f"{model} [coreai-{self.precision}] ({self.directory})"

    def op(self, op_id: int) -> OpInfo | None:
        return next((op for op in self.ops if op.op_id == op_id), None)

    # -- disk ---------------------------------------------------------------------------

    @staticmethod
    def write_meta(directory: Path, meta: Mapping[str, Any]) -> None:
        payload = {"format": FORMAT_VERSION, **meta}
        tmp = directory / (META_NAME + ".tmp")
        tmp.write_text(json.dumps(payload, indent=1, sort_keys=True), encoding="utf-8")
        os.replace(tmp, directory / META_NAME)

    def save(self, destination: Path) -> CoreAIProgram:
        """Copy the program to ``destination`` (replaced atomically) and return the copy."""
        destination = Path(destination)
        destination.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".coreai-", dir=destination.parent))
        try:
            shutil.copytree(self.asset_path, staging / ASSET_NAME)
            self.write_meta(staging, self.meta)
            if destination.exists():
                shutil.rmtree(destination)
            os.replace(staging, destination)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return CoreAIProgram(destination, self.meta)

    @classmethod
    def load(cls, directory: Path) -> CoreAIProgram:
        """Open a saved program; a missing, foreign or corrupt one raises CacheEntryError."""
        directory = Path(directory)
        where = str(directory)
        try:
            meta = json.loads((directory / META_NAME).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise CacheEntryError(f"no {META_NAME}", where) from None
        except (OSError, ValueError) as exc:
            raise CacheEntryError(f"unreadable {META_NAME}: {exc}", where) from None
        if not isinstance(meta, dict) or meta.get("format") != FORMAT_VERSION:
            raise CacheEntryError(f"{META_NAME} is not format {FORMAT_VERSION}", where)
        if not _asset_digest_ok(directory / ASSET_NAME):
            raise CacheEntryError(f"{ASSET_NAME} is missing or fails its sha256", where)
        try:
            return cls(directory, meta)
        except (KeyError, TypeError, ValueError) as exc:
            raise CacheEntryError(f"{META_NAME} is malformed: {exc!r}", where) from None

    # -- running --------------------------------------------------------------------------

    def feed(self, *inputs: Any) -> dict[str, np.ndarray]:
        """Positional tensors/arrays -> the program's named inputs, in its declared dtypes."""
        import numpy as np

        if len(inputs) != len(self.inputs):
            raise InputMismatchError(
                f"{self.name} takes {len(self.inputs)} input(s) "
                f"({', '.join(t.name for t in self.inputs)}), got {len(inputs)}"
            )
        feed: dict[str, np.ndarray] = {}
        for spec, value in zip(self.inputs, inputs, strict=True):
            array = to_numpy(value)
            if tuple(array.shape) != spec.shape:
                raise InputMismatchError(
                    f"input {spec.name!r} of {self.name} has shape {spec.shape}, "
                    f"got {tuple(array.shape)} (Core AI programs are converted with static shapes)"
                )
            feed[spec.name] = np.ascontiguousarray(array.astype(spec.dtype, copy=False))
        return feed

    def structure(self, outputs: Mapping[str, np.ndarray]) -> Any:
        """Named outputs -> the torch model's output structure."""
        return unflatten_structure(self.output_tree, [outputs[spec.name] for spec in self.outputs])

    def run(
        self, feed: Mapping[str, np.ndarray], *, timeout: float | None = None
    ) -> dict[str, np.ndarray]:
        """Run on named inputs in the shared worker; outputs by name."""
        from .worker import default_worker

        return default_worker().run(self, feed, timeout=timeout)

    def __call__(self, *inputs: Any, timeout: float | None = None) -> Any:
        return self.structure(self.run(self.feed(*inputs), timeout=timeout))


def specs_to_json(specs: Sequence[TensorSpec]) -> list[dict[str, Any]]:
    return [asdict(spec) for spec in specs]


__all__ = [
    "ASSET_NAME",
    "META_NAME",
    "PRECISIONS",
    "CoreAIProgram",
    "OpInfo",
    "TensorSpec",
    "flatten_structure",
    "unflatten_structure",
]
