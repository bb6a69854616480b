"""An ``.mlpackage`` opened without coremltools: its spec, weights folder and function.

:class:`SavedModel` is what a disk-cache hit gives the emulator backend: it reads the
package's ``Manifest.json`` and parses ``model.mlmodel`` with the schema of
:mod:`.proto`, so a warm session never imports coremltools (seconds of start-up).
It stands in for coremltools' ``MLModel`` opened with ``skip_model_load=True``:
``get_spec()``, ``package_path``, ``weights_dir`` and ``function_name`` are its own;
any other attribute (``save``, ``user_defined_metadata``, ``predict``, ...) builds
that ``MLModel`` on first use (importing coremltools then) and is read from it.
:meth:`SavedModel.to_mlmodel` returns it (private attributes are not forwarded);
:func:`as_mlmodel` gives the ``MLModel`` of either kind (``CoreMLModel.to_mlmodel`` calls it).
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

from .errors import ModelLoadError
from .proto import parse_model

#: The Manifest.json author of Core ML's items, and the names of the two we read.
_AUTHOR = "com.apple.CoreML"


class SavedModel:
    """A saved ``.mlpackage`` (see the module docstring)."""

    def __init__(self, path: str | os.PathLike[str], function_name: str | None = None) -> None:
        self.package_path = str(path)
        self.function_name = function_name
        root = Path(path)
        items = _manifest_items(root)
        spec_item = items.get("root")
        if spec_item is None:
            raise ModelLoadError(f"{root}: Manifest.json names no root model")
        self._spec_path = root / "Data" / spec_item
        weights = items.get("weights")
        self.weights_dir: str | None = str(root / "Data" / weights) if weights else None
        self._spec: Any = None
        self._mlmodel: Any = None
        self._lock = threading.Lock()

    def get_spec(self) -> Any:
        """The package's ``Model`` message (parsed once; do not modify it)."""
        with self._lock:
            if self._spec is None:
                try:
                    data = self._spec_path.read_bytes()
                except OSError as exc:
                    raise ModelLoadError(f"{self.package_path}: cannot read the model spec: {exc}") from exc
                try:
                    self._spec = parse_model(data)
                except Exception as exc:  # protobuf's DecodeError
                    raise ModelLoadError(
                        f"{self.package_path}: cannot read the model spec: {exc}"
                    ) from exc
            return self._spec

    def to_mlmodel(self) -> Any:
        """coremltools' ``MLModel`` of this package (``skip_model_load=True``), built once."""
        with self._lock:
            if self._mlmodel is None:
                from .._coremltools import import_coremltools

                ct = import_coremltools()
                self._mlmodel = ct.models.MLModel(
                    self.package_path, skip_model_load=True, function_name=self.function_name
                )
            return self._mlmodel

    def __getattr__(self, name: str) -> Any:
        """A public attribute of coremltools' ``MLModel`` of this package (built on first use);
        private names are not forwarded."""
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.to_mlmodel(), name)

    def __repr__(self) -> str:
        return f"SavedModel({self.package_path!r}, function_name={self.function_name!r})"


def as_mlmodel(model: Any) -> Any:
    """coremltools' ``MLModel`` of ``model``: a :class:`SavedModel`'s (built on first use),
    anything else (an ``MLModel`` already) as it is."""
    return model.to_mlmodel() if isinstance(model, SavedModel) else model


def _manifest_items(root: Path) -> dict[str, str]:
    """{"root": path of the spec, "weights": path of the weights folder} (under Data/)."""
    manifest = root / "Manifest.json"
    if not root.exists():
        raise ModelLoadError(f"{root}: no such file or directory")
    if not manifest.is_file():
        raise ModelLoadError(f"{root}: not an .mlpackage (no Manifest.json)")
    try:
        data = json.loads(manifest.read_text())
        entries = data["itemInfoEntries"]
        found = {}
        root_id = data.get("rootModelIdentifier")
        if root_id in entries:
            found["root"] = str(entries[root_id]["path"])
        for entry in entries.values():
            if entry.get("name") == "weights" and entry.get("author") == _AUTHOR:
                found["weights"] = str(entry["path"])
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"{root}: Manifest.json is not valid JSON: {exc}") from exc
    except (KeyError, TypeError, AttributeError) as exc:
        raise ModelLoadError(f"{root}: Manifest.json is malformed ({exc!r})") from exc
    return found
