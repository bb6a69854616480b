"""Load the MIL Program of an ML Program model from its own spec and weights.

We read what the model file says rather than whatever in-memory program produced
it, so any saved ``.mlpackage`` runs, whoever made it. Two loaders read it into
the same plan (``tests/emulator/test_milproto.py`` checks they agree):

* ``proto`` (the default): :mod:`.milproto` reads the protobuf and the weight files
  itself, without importing coremltools (a warm session starts in seconds);
* ``coremltools``: coremltools' milproto loader, used when the program holds
  something :mod:`.milproto` does not model (:class:`~.milproto.NeedsCoremltools`),
  and by the tests as the reference.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..shapes import AllowedShapes, read_allowed
from .blob import check_weight_files
from .errors import ModelLoadError, UnsupportedFeatureError
from .image_inputs import ImageInput, read_images
from .saved import SavedModel

ModelLike = Any  # coremltools.models.MLModel | SavedModel | str | os.PathLike[str]

#: The loaders :func:`load_program` knows (see the module docstring).
LOADERS = ("proto", "coremltools")


@dataclass(frozen=True)
class LoadedProgram:
    """A MIL function ready to plan, with where it came from."""

    #: A :class:`~.mil.MilFunction`, or coremltools' ``Function`` (loader ``coremltools``).
    function: Any
    function_name: str
    opset: str
    source: str
    #: Per multi-array input, the shapes the model description allows.
    allowed: tuple[AllowedShapes, ...] = ()
    #: The inputs the description declares as images (``ct.ImageType``), by name.
    images: dict[str, ImageInput] = field(default_factory=dict)
    #: Which loader read it (one of :data:`LOADERS`).
    loader: str = "proto"


def load_program(
    model: ModelLike, function_name: str = "main", *, loader: str = "proto"
) -> LoadedProgram:
    """Return the MIL function ``function_name`` of ``model`` (an MLModel, a
    :class:`SavedModel` or a path); ``loader`` is one of :data:`LOADERS`."""
    if loader not in LOADERS:
        raise ValueError(f"loader={loader!r}; expected one of {LOADERS}")
    if isinstance(model, (str, os.PathLike)):
        source = str(model)
        model = SavedModel(model)
    elif isinstance(model, SavedModel):
        source = f"MLModel at {model.package_path}"
    elif _is_mlmodel(model):
        source = f"MLModel at {getattr(model, 'package_path', None) or 'memory'}"
    else:
        raise ModelLoadError(
            f"expected a coremltools MLModel or a path to an .mlpackage, got {type(model).__name__}"
        )

    try:
        spec = model.get_spec()
    except ModelLoadError:
        raise
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
        check_weight_files(Path(weights_dir), source)

    functions = list(spec.mlProgram.functions)
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
    function: Any = None
    if loader == "proto":
        from .milproto import NeedsCoremltools, load_function

        try:
            function = load_function(spec, name, Path(weights_dir) if weights_dir else None, source)
            opset = function.opset
        except NeedsCoremltools:
            loader = "coremltools"
        except (ModelLoadError, UnsupportedFeatureError):
            raise
        except Exception as exc:  # a malformed program (as coremltools' loader reports it)
            raise ModelLoadError(f"{source}: cannot load the ML Program: {exc!r}") from exc
    if loader == "coremltools":
        function, opset = _load_with_coremltools(spec, name, weights_dir, source)
    return LoadedProgram(
        function=function,
        function_name=name,
        opset=opset,
        source=source,
        allowed=read_allowed(_function_description(spec.description, name)),
        images=read_images(spec.description, name),
        loader=loader,
    )


def _is_mlmodel(model: Any) -> bool:
    """Whether ``model`` is coremltools' MLModel (checked without importing coremltools:
    if it is not imported, nothing can be one)."""
    models = sys.modules.get("coremltools.models")
    return models is not None and isinstance(model, models.MLModel)


def _load_with_coremltools(
    spec: Any, name: str, weights_dir: str | None, source: str
) -> tuple[Any, str]:
    """(coremltools' MIL function ``name``, its opset name) via coremltools' milproto loader."""
    from .._coremltools import import_coremltools

    ct = import_coremltools()
    from coremltools.converters.mil.frontend.milproto.load import load as milproto_load

    try:
        program = milproto_load(spec, spec.specificationVersion, weights_dir)
    except NotImplementedError as exc:  # e.g. "Variadic dimensions not yet implemented."
        raise UnsupportedFeatureError(
            f"this program: coremltools' milproto loader cannot read it ({exc})", source
        ) from exc
    except Exception as exc:
        raise ModelLoadError(f"{source}: cannot load the ML Program: {exc}") from exc
    function = program.functions[name]
    try:
        opset = ct.target(function.opset_version).name
    except (ValueError, TypeError):
        opset = str(function.opset_version)
    return function, opset


def _function_description(description: Any, name: str) -> Any:
    """A multi-function model's description of function ``name`` (its own inputs), else
    the model's description."""
    for function in getattr(description, "functions", ()):
        if function.name == name:
            return function
    return description
