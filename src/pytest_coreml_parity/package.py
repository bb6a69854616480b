"""``@pytest.mark.coreml(package=...)``: test a ``.mlpackage`` built elsewhere.

No conversion and no cache: the artifact you ship is loaded as it is, checked to
load on the emulator (which also says whether its compute ops are fp16-typed:
that is the precision its verdict uses), and its inputs are mapped onto
``torch_model.forward``'s parameters by name, or by position when the package
kept coremltools' default names. Every mismatch names both sides.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import messages
from ._suggest import did_you_mean
from .errors import PackageError
from .shapes import AllowedShapes, read_allowed

if TYPE_CHECKING:
    from .backends import Backend

#: Core ML multiArray data types -> numpy dtype names (model.py's table, by enum name).
_ARRAY_DTYPES = {"FLOAT32": "float32", "FLOAT16": "float16", "DOUBLE": "float64", "INT32": "int32"}
#: Names coremltools gives inputs nobody named (``x_1``, ``input_2``, ``args_0``).
_DEFAULT_NAME = re.compile(r"^(x|input|inputs|inp|args?|arg\d+)(_\d+)?$")
#: Ops whose fp16 output says nothing about the compute precision.
_NOT_COMPUTE = frozenset({"cast", "const"})


def resolve_path(raw: Any, test_dir: Path, rootdir: Path, where: str) -> Path:
    """The package ``raw`` names: absolute as given; relative, against the test file's
    directory first, then the rootdir. Raises :class:`PackageError` naming both places."""
    if not isinstance(raw, (str, Path)) or not str(raw).strip():
        raise PackageError(messages.PACKAGE_BAD_VALUE.format(where=where, got=repr(raw)))
    path = Path(str(raw)).expanduser()
    candidates = [path] if path.is_absolute() else [test_dir / path, rootdir / path]
    for candidate in candidates:
        if candidate.exists():
            return candidate.resolve()
    tried = " and ".join(str(c) for c in dict.fromkeys(candidates))
    raise PackageError(messages.PACKAGE_MISSING.format(path=str(raw), where=where, tried=tried))


@dataclass(frozen=True)
class SpecInput:
    """One input the package declares: name, numpy dtype name (None: image), shapes."""

    name: str
    dtype: str | None
    allowed: AllowedShapes | None

    def describe(self) -> str:
        if self.dtype is None:
            return f"{self.name}: image"
        shape = self.allowed.describe() if self.allowed is not None else "?"
        return f"{self.name}: {shape} {self.dtype}"


@dataclass(frozen=True)
class LoadedPackage:
    """A package ready to run against a torch model."""

    path: Path
    mlmodel: Any
    #: The package's input names, in the order of ``torch_model.forward``'s parameters.
    input_names: tuple[str, ...]
    input_dtypes: tuple[str | None, ...]
    output_names: tuple[str, ...]
    allowed: dict[str, AllowedShapes]
    precision: str
    why: str


def spec_inputs(description: Any) -> tuple[SpecInput, ...]:
    allowed = {a.name: a for a in read_allowed(description)}
    result = []
    for feature in description.input:
        result.append(SpecInput(feature.name, _dtype_name(feature), allowed.get(feature.name)))
    return tuple(result)


def _dtype_name(feature: Any) -> str | None:
    """The numpy dtype name of a multi-array feature, else None."""
    if feature.type.WhichOneof("Type") != "multiArrayType":
        return None
    array = feature.type.multiArrayType
    enum = str(type(array).ArrayDataType.Name(array.dataType))
    return _ARRAY_DTYPES.get(enum, enum.lower())


def _torch_side(params: Sequence[str], examples: Sequence[Any]) -> str:
    shown = [
        f"{p}: {tuple(x.shape)} {str(x.dtype).removeprefix('torch.')}"
        for p, x in zip(params, examples, strict=True)
    ]
    return "[" + ", ".join(shown) + "]"


def _mapped(
    mapping: Mapping[str, str],
    names: Sequence[str],
    by_name: Mapping[str, SpecInput],
    params: Sequence[str],
    fail: Callable[[str], PackageError],
) -> tuple[SpecInput, ...]:
    """The package's inputs ordered by ``package_inputs`` (package name -> forward argument)."""
    unknown = [k for k in mapping if k not in by_name]
    if unknown:
        raise fail(
            messages.PACKAGE_INPUTS_UNKNOWN.format(side="package input", names=unknown, known=list(names))
            + did_you_mean(unknown[0], names)
        )
    bad = [v for v in mapping.values() if v not in params]
    if bad:
        raise fail(
            messages.PACKAGE_INPUTS_UNKNOWN.format(side="forward argument", names=bad, known=list(params))
            + did_you_mean(bad[0], params)
        )
    twice = sorted({v for v in mapping.values() if list(mapping.values()).count(v) > 1})
    unmapped_params = [p for p in params if p not in mapping.values()]
    unmapped_inputs = [n for n in names if n not in mapping]
    if twice or unmapped_params or unmapped_inputs:
        raise fail(
            messages.PACKAGE_INPUTS_NOT_ONE_TO_ONE.format(
                twice=twice, params=unmapped_params, inputs=unmapped_inputs
            )
        )
    by_param = {v: k for k, v in mapping.items()}
    return tuple(by_name[by_param[p]] for p in params)


def map_inputs(
    package: str,
    model: str,
    inputs: Sequence[SpecInput],
    params: Sequence[str],
    examples: Sequence[Any],
    mapping: Mapping[str, str] | None = None,
) -> tuple[SpecInput, ...]:
    """The package's inputs in the order of ``params`` (forward's parameters): by the
    marker's ``package_inputs`` mapping when given, else by name, or by position when the
    package's names are coremltools' defaults. Checks each example's shape and dtype
    against the package's declaration."""

    def fail(problem: str) -> PackageError:
        return PackageError(
            messages.PACKAGE_INPUT_MISMATCH.format(
                package=package,
                model=model,
                problem=problem,
                package_inputs="[" + ", ".join(i.describe() for i in inputs) + "]",
                torch_inputs=_torch_side(params, examples),
            )
        )

    names = [i.name for i in inputs]
    by_name = {i.name: i for i in inputs}
    if mapping is not None:
        ordered = _mapped(mapping, names, by_name, params, fail)
    elif set(names) == set(params):
        ordered = tuple(by_name[p] for p in params)
    elif all(_DEFAULT_NAME.match(n) for n in names) and len(names) == len(params):
        ordered = tuple(inputs)  # coremltools' default names: by position
    else:
        missing = [p for p in params if p not in by_name]
        extra = [n for n in names if n not in params]
        hint = ""
        if len(missing) == len(extra):  # the mapping that would fit, paste-ready
            hint = f"; map them with @pytest.mark.coreml(package_inputs={dict(zip(extra, missing, strict=True))})"
        raise fail(f"names differ: missing in the package {missing}, extra in the package {extra}{hint}")
    for spec, param, example in zip(ordered, params, examples, strict=True):
        shape = tuple(example.shape)
        if spec.allowed is not None and not spec.allowed.allows(shape):
            raise fail(
                f"{param}'s example shape {shape} is not allowed by package input "
                f"{spec.name!r} ({spec.allowed.describe()})"
            )
        if spec.dtype is not None and example.is_floating_point() != spec.dtype.startswith("float"):
            raise fail(
                f"{param} is {str(example.dtype).removeprefix('torch.')} but package input "
                f"{spec.name!r} is {spec.dtype}"
            )
    return ordered


def program_precision(path: Path, profile: str) -> tuple[str, str]:
    """(``fp16`` or ``fp32``, why): fp16 when a compute op of the program (not a cast)
    has an fp16-typed output, read from the emulator's plan. Also proves it loads."""
    import numpy as np

    from .emulator import Emulator, EmulatorError

    try:
        emulator = Emulator(path, fp16_execution=profile)
    except EmulatorError as exc:
        raise PackageError(
            messages.PACKAGE_LOAD_FAILED.format(package=path, error=f"{type(exc).__name__}: {exc}")
        ) from None
    counted = 0
    for op in emulator.ops:
        if op.op_type in _NOT_COMPUTE:
            continue
        for out in op.outputs:
            try:
                dtype = emulator.declared_dtype(out)
            except KeyError:
                continue
            if dtype == np.float16:
                counted += 1
                break
    if counted:
        return "fp16", f"{counted} compute ops are fp16-typed"
    return "fp32", "no compute op is fp16-typed"


def load_package(
    path: Path,
    torch_model: Any,
    example_inputs: Sequence[Any],
    params: Sequence[str],
    backend: Backend,
    compute_units: str,
    profile: str,
    mapping: Mapping[str, str] | None = None,
) -> LoadedPackage:
    """Load ``path`` on ``backend``, read its precision and map its inputs."""
    try:
        precision, why = program_precision(path, profile)
        unplanned = None
    except PackageError as exc:
        if backend.records:  # the emulator runs nothing it cannot plan
            raise
        unplanned = exc  # the real runtime may still run what the emulator cannot
    try:
        mlmodel = backend.load(path, compute_units)
        description = mlmodel.get_spec().description
    except Exception as exc:
        raise PackageError(
            messages.PACKAGE_LOAD_FAILED.format(package=path, error=f"{type(exc).__name__}: {exc}")
        ) from None
    if unplanned is not None:
        fp16 = any(_dtype_name(o) == "float16" for o in description.output)
        precision = "fp16" if fp16 else "fp32"
        why = f"read from its output dtypes; the emulator cannot plan it: {unplanned}"
    model = type(torch_model).__name__
    ordered = map_inputs(path.name, model, spec_inputs(description), params, example_inputs, mapping)
    return LoadedPackage(
        path=path,
        mlmodel=mlmodel,
        input_names=tuple(i.name for i in ordered),
        input_dtypes=tuple(i.dtype for i in ordered),
        output_names=tuple(o.name for o in description.output),
        allowed={a.name: a for a in read_allowed(description)},
        precision=precision,
        why=why,
    )


__all__ = ["LoadedPackage", "SpecInput", "load_package", "map_inputs", "resolve_path"]
