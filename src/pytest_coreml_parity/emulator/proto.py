"""The Core ML protobuf schema (``Model.proto``, ``MIL.proto``) without importing coremltools.

``import coremltools`` costs seconds (it imports torch, and torchao and scikit-learn
when installed, only to check their versions), while the schema is a handful of
generated ``*_pb2.py`` modules that need only ``google.protobuf``. So we load
coremltools' own generated modules, ``coremltools/proto/*_pb2.py``, by file path,
under this package's name, without executing ``coremltools/__init__.py``:

* they are exactly the schema the installed coremltools reads and writes, generated
  for the protobuf runtime it supports, so there is no second copy to keep in step
  and no build step (coremltools is BSD-3; nothing is vendored);
* protobuf keeps one message class per descriptor, so a message parsed here is of
  the same class as coremltools' own (``Model_pb2.Model``) when coremltools is
  imported later in the process, and a ``get_spec()`` from an ``MLModel`` reads here
  unchanged.

When coremltools is already imported we use its modules; when its ``proto`` folder
cannot be found (another layout), we import ``coremltools.proto`` after all.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
import types
from pathlib import Path
from typing import Any

#: The package the generated modules are loaded under (their relative imports resolve
#: to siblings in the same folder).
_ALIAS = f"{__name__}._coremltools_proto"
_LOCK = threading.Lock()


def _proto_dir() -> Path | None:
    """coremltools' ``proto`` folder, found without importing coremltools."""
    try:
        spec = importlib.util.find_spec("coremltools")
    except (ImportError, ValueError):
        return None
    for location in (spec.submodule_search_locations or []) if spec is not None else []:
        folder = Path(location) / "proto"
        if (folder / "Model_pb2.py").is_file() and (folder / "MIL_pb2.py").is_file():
            return folder
    return None


def _module(name: str) -> Any:
    """The generated module ``name`` (``Model_pb2``, ``MIL_pb2``)."""
    loaded = sys.modules.get(f"coremltools.proto.{name}")
    if loaded is not None:
        return loaded
    with _LOCK:
        if _ALIAS not in sys.modules:
            folder = _proto_dir()
            if folder is None:
                return importlib.import_module(f"coremltools.proto.{name}")
            package = types.ModuleType(_ALIAS, "coremltools' generated Core ML schema")
            package.__path__ = [str(folder)]
            sys.modules[_ALIAS] = package
        return importlib.import_module(f"{_ALIAS}.{name}")


def model_pb2() -> Any:
    """The generated ``Model_pb2`` module (``Model``, ``ModelDescription``, ...)."""
    return _module("Model_pb2")


def mil_pb2() -> Any:
    """The generated ``MIL_pb2`` module (``Program``, ``Operation``, ``DataType``, ...)."""
    return _module("MIL_pb2")


def parse_model(data: bytes) -> Any:
    """A ``Model`` message parsed from ``data`` (raises protobuf's ``DecodeError``)."""
    model = model_pb2().Model()
    model.ParseFromString(data)
    return model
