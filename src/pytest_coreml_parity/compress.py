"""Compressed precisions: ``ct.optimize.coreml`` applied to the converted fp16 program.

Users ship int8, palettized, pruned and W8A8 models built on top of fp16, so a
compressed precision is the fp16 conversion followed by one compression step,
exactly as coremltools' post-training API does it. :mod:`.convert` calls
:func:`compress` (the one conversion path); nothing here traces or converts.

``w8a8`` calibrates its activation ranges by running the fp16 program on the
example inputs. coremltools does that through ``MLModel.predict``, which does not
exist on Linux; :func:`emulated_predictions` routes those calls to the emulator
for the duration of the calibration, in the calling thread only, on every OS (so
the calibrated model, and its cache entry, do not depend on where it was built).

Cheap to import: coremltools and numpy load inside the functions.
"""

from __future__ import annotations

import contextlib
import threading
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

from . import messages
from ._values import to_numpy
from .canonical import canonical_text
from .errors import ConversionError, SettingError
from .precisions import PRECISIONS, TABLE
from .precisions import is_compressed as _is_compressed

#: Per compressed precision: what it is, in words (docs and descriptions; precisions.TABLE).
RECIPES: dict[str, str] = {p.name: p.recipe for p in TABLE if p.recipe is not None}

#: Deployment-target families and the offset of their release numbers from iOS's.
_FAMILIES: dict[str, int] = {"iOS": 0, "macOS": -3, "watchOS": -7, "tvOS": 0}


def is_compressed(precision: str) -> bool:
    return _is_compressed(precision)


def effective_target(target: str, precision: str) -> str:
    """``target``, raised to the first release of its family that runs ``precision``.

    ``int8`` at ``iOS15`` converts at ``iOS16``, ``w8a8`` at ``macOS13`` at ``macOS14``:
    a program with compressed weights cannot declare an older target. Raising
    (rather than erroring) keeps a session-wide ``--coreml-target iOS15`` usable with
    every precision; :meth:`ConversionOptions.describe` says when it happened.
    """
    row = PRECISIONS.get(precision)
    minimum = row.minimum_ios if row is not None else None
    if minimum is None:
        return target
    for family, offset in _FAMILIES.items():
        version = target[len(family):]
        if target.startswith(family) and version.isdigit():
            floor = minimum + offset
            return target if int(version) >= floor else f"{family}{floor}"
    return target


# --------------------------------------------------------------------------- keys


def optimization_key(optimization: Any) -> str | None:
    """Stable text identifying a user's ``OptimizationConfig`` (or sequence of them); part
    of the cache key, so changing any field of the config converts again."""
    if optimization is None:
        return None
    return canonical_text(optimization)


# ------------------------------------------------------------------- calibration


_LOCAL = threading.local()
_PATCH_LOCK = threading.Lock()
_patch_depth = 0
_original_predict: Any = None


def _routed_predict(self: Any, data: Any, *args: Any, **kwargs: Any) -> Any:
    if getattr(_LOCAL, "active", 0):
        from .emulator import emulate

        return emulate(self, data)
    return _original_predict(self, data, *args, **kwargs)


@contextlib.contextmanager
def emulated_predictions() -> Iterator[None]:
    """Within the block, ``MLModel.predict`` in this thread runs the emulator.

    What coremltools' calibration needs on Linux, where ``predict`` cannot run. Other
    threads keep the original ``predict``, and the class attribute is restored when
    the last block exits (also on error), so nothing is left patched.
    """
    global _patch_depth, _original_predict
    from ._coremltools import import_coremltools

    mlmodel_class = import_coremltools().models.MLModel
    with _PATCH_LOCK:
        if _patch_depth == 0:
            _original_predict = mlmodel_class.predict
            mlmodel_class.predict = _routed_predict
        _patch_depth += 1
    _LOCAL.active = getattr(_LOCAL, "active", 0) + 1
    try:
        yield
    finally:
        _LOCAL.active -= 1
        with _PATCH_LOCK:
            _patch_depth -= 1
            if _patch_depth == 0:
                mlmodel_class.predict = _original_predict
                _original_predict = None


# ------------------------------------------------------------------- compression


def builtin_configs(precision: str) -> list[tuple[str, Any]]:
    """The steps of a built-in compressed precision: (coremltools function name, config)."""
    row = PRECISIONS.get(precision)
    if row is None or row.steps is None:
        raise SettingError(messages.UNKNOWN_COMPRESSION.format(precision=precision))
    from ._coremltools import import_coremltools

    return row.steps(import_coremltools().optimize.coreml)


_FUNCTION_FOR = {
    "OpLinearQuantizerConfig": "linear_quantize_weights",
    "OpPalettizerConfig": "palettize_weights",
    "OpMagnitudePrunerConfig": "prune_weights",
    "OpThresholdPrunerConfig": "prune_weights",
}


def custom_steps(optimization: Any) -> list[tuple[str, Any]]:
    """A user's config(s) as steps: the function follows from the op configs' type.

    Raises :class:`ConversionError` when one config mixes kinds (coremltools applies
    one kind per call; pass a list of configs to chain them, e.g. prune then palettize).
    """
    configs = list(optimization) if isinstance(optimization, (list, tuple)) else [optimization]
    steps = []
    for config in configs:
        op_configs = [config.global_config, *config.op_type_configs.values(), *config.op_name_configs.values()]
        kinds = {_FUNCTION_FOR.get(type(c).__name__, type(c).__name__) for c in op_configs if c is not None}
        if len(kinds) != 1 or not kinds <= set(_FUNCTION_FOR.values()):
            raise ConversionError(messages.BAD_OPTIMIZATION_KINDS.format(kinds=sorted(kinds) or "none"))
        steps.append((kinds.pop(), config))
    return steps


def calibration_feed(mlmodel: Any, example_inputs: Sequence[Any]) -> dict[str, Any]:
    """The example inputs keyed by the program's input names, in its declared dtypes."""

    from .emulator import Emulator

    specs = Emulator(mlmodel).inputs
    feed = {}
    for spec, x in zip(specs, example_inputs, strict=True):
        array = to_numpy(x)
        feed[spec.name] = array.astype(spec.dtype)
    return feed


def compress(mlmodel: Any, precision: str, optimization: Any, example_inputs: Sequence[Any]) -> Any:
    """Apply ``precision``'s compression (or the user's ``optimization``) to an fp16 MLModel.

    Returns the compressed MLModel (coremltools' untyped object). Raises
    :class:`ConversionError` when coremltools refuses; the caller adds which model.
    """
    from ._coremltools import import_coremltools

    row = PRECISIONS.get(precision)
    if row is not None and row.needs is not None:
        import importlib

        module, distribution, extra = row.needs
        try:
            importlib.import_module(module)  # coremltools imports it for this recipe anyway
        except ImportError:
            raise ConversionError(
                messages.PRECISION_NEEDS_EXTRA.format(
                    precision=precision, distribution=distribution, module=module, extra=extra
                )
            ) from None
    cto = import_coremltools().optimize.coreml
    if row is not None and row.user_config:
        if optimization is None:
            raise SettingError(messages.CUSTOM_NEEDS_OPTIMIZATION.format(where="ConversionOptions"))
        steps = custom_steps(optimization)
    else:
        steps = builtin_configs(precision)
    for function, config in steps:
        with warnings.catch_warnings():
            # numpy warnings from inside coremltools' compression (np.quantile of fp16
            # weights, k-means) are not about the user's model; docs/compression.md.
            warnings.filterwarnings("ignore", category=RuntimeWarning)
            if function == "linear_quantize_activations":
                feed = calibration_feed(mlmodel, example_inputs)
                with emulated_predictions():
                    mlmodel = cto.experimental.linear_quantize_activations(mlmodel, config, [feed])
            else:
                mlmodel = getattr(cto, function)(mlmodel, config)
    return mlmodel


__all__ = [
    "RECIPES",
    "builtin_configs",
    "calibration_feed",
    "compress",
    "custom_steps",
    "effective_target",
    "emulated_predictions",
    "is_compressed",
    "optimization_key",
]
