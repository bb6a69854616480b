"""Load the MIL Program of an ML Program model from its own spec and weights.

We read what the model file says, through coremltools' milproto loader, rather
than whatever in-memory program produced it, so any saved ``.mlpackage`` runs,
whoever made it.
"""

from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..shapes import AllowedShapes, read_allowed
from .errors import ModelLoadError, UnsupportedFeatureError
from .image_inputs import ImageInput, read_images

ModelLike = Any  # coremltools.models.MLModel | str | os.PathLike[str]


@dataclass(frozen=True)
class LoadedProgram:
    """A MIL function ready to plan, with where it came from."""

    function: Any  # coremltools.converters.mil.mil.Function
    function_name: str
    opset: str
    source: str
    #: Per multi-array input, the shapes the model description allows.
    allowed: tuple[AllowedShapes, ...] = ()
    #: The inputs the description declares as images (``ct.ImageType``), by name.
    images: dict[str, ImageInput] = field(default_factory=dict)


def load_program(model: ModelLike, function_name: str = "main") -> LoadedProgram:
    """Return the MIL function ``function_name`` of ``model`` (an MLModel or a path)."""
    from .._coremltools import import_coremltools

    ct = import_coremltools()
    if isinstance(model, (str, os.PathLike)):
        source = str(model)
        model = _open_package(Path(model), ct)
    elif isinstance(model, ct.models.MLModel):
        source = f"MLModel at {getattr(model, 'package_path', None) or 'memory'}"
    else:
        raise ModelLoadError(
            f"expected a coremltools MLModel or a path to an .mlpackage, got {type(model).__name__}"
        )

    try:
        spec = model.get_spec()
    except Exception as exc:  # coremltools raises plain Exceptions here
        raise ModelLoadError(f"{source}: cannot read the model spec: {exc}") from exc
    kind = spec.WhichOneof("Type")
    if kind != "mlProgram":
        raise ModelLoadError(
            f"{source}: model type is {kind!r}, not an ML Program; the emulator only runs "
            "ML Programs (convert with convert_to='mlprogram')"
        )
    weights_dir = getattr(model, "weights_dir", None)
    if weights_dir is not None:
        _check_weight_files(Path(weights_dir), source)

    from coremltools.converters.mil.frontend.milproto.load import load as milproto_load

    try:
        program = milproto_load(spec, spec.specificationVersion, weights_dir)
    except NotImplementedError as exc:  # e.g. "Variadic dimensions not yet implemented."
        raise UnsupportedFeatureError(
            f"this program: coremltools' milproto loader cannot read it ({exc})", source
        ) from exc
    except Exception as exc:
        raise ModelLoadError(f"{source}: cannot load the ML Program: {exc}") from exc

    functions = program.functions
    name = function_name
    chosen = getattr(model, "function_name", None)  # MLModel(path, function_name=...)
    if name == "main" and isinstance(chosen, str) and chosen in functions:
        name = chosen
    if name not in functions and name == "main":
        name = spec.description.defaultFunctionName or next(iter(functions), name)
    if name not in functions:
        raise ModelLoadError(
            f"{source}: no function {function_name!r}; the program has {sorted(functions)}"
        )
    function = functions[name]
    try:
        opset = ct.target(function.opset_version).name
    except (ValueError, TypeError):
        opset = str(function.opset_version)
    return LoadedProgram(
        function=function,
        function_name=name,
        opset=opset,
        source=source,
        allowed=read_allowed(_function_description(spec.description, name)),
        images=read_images(spec.description, name),
    )


def _function_description(description: Any, name: str) -> Any:
    """A multi-function model's description of function ``name`` (its own inputs), else
    the model's description."""
    for function in getattr(description, "functions", ()):
        if function.name == name:
            return function
    return description


def _open_package(path: Path, ct: Any) -> Any:
    if not path.exists():
        raise ModelLoadError(f"{path}: no such file or directory")
    if path.is_dir():
        manifest = path / "Manifest.json"
        if not manifest.is_file():
            raise ModelLoadError(f"{path}: not an .mlpackage (no Manifest.json)")
        try:
            json.loads(manifest.read_text())
        except (OSError, ValueError) as exc:
            raise ModelLoadError(f"{path}: Manifest.json is not valid JSON: {exc}") from exc
    try:
        return ct.models.MLModel(str(path), skip_model_load=True)
    except Exception as exc:
        raise ModelLoadError(f"{path}: coremltools cannot open it: {exc}") from exc


# The MIL weight blob format (mil/util/Blob*): a 64-byte file header holding a
# count and a version, then per blob a 64-byte metadata record starting with the
# sentinel 0xDEADBEEF, followed by its data. The milproto loader reads it in
# C++ without bounds checks, so a truncated file is checked here first.
_BLOB_SENTINEL = 0xDEADBEEF
_HEADER = struct.Struct("<II")
_METADATA = struct.Struct("<IIQQ")  # sentinel, mil_dtype, size_in_bytes, offset


def _check_weight_files(weights_dir: Path, source: str) -> None:
    if not weights_dir.is_dir():
        return
    for blob in weights_dir.glob("*.bin"):
        _check_blob_file(blob, source)


def _check_blob_file(blob: Path, source: str) -> None:
    data = blob.read_bytes()
    size = len(data)
    if size < 64:
        raise ModelLoadError(f"{source}: weight file {blob.name} is truncated ({size} bytes)")
    offset = 64
    while offset < size:
        if offset + _METADATA.size > size:
            raise ModelLoadError(f"{source}: weight file {blob.name} is truncated at byte {offset}")
        sentinel, _dtype, nbytes, data_offset = _METADATA.unpack_from(data, offset)
        if sentinel != _BLOB_SENTINEL:
            raise ModelLoadError(
                f"{source}: weight file {blob.name} is corrupt (bad blob header at byte {offset})"
            )
        end = data_offset + nbytes
        if end > size:
            raise ModelLoadError(
                f"{source}: weight file {blob.name} is truncated: a blob needs bytes "
                f"{data_offset}..{end} but the file has {size}"
            )
        offset = (end + 63) // 64 * 64
