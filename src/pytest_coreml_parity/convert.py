"""Trace (or export) a torch model and convert it with coremltools, quietly.

``ConversionOptions`` is everything besides the model and its example inputs
that changes the converted program; it is part of every cache key. Conversion
errors become :class:`ConversionError` with a one-line summary naming the op
and the reason, so a model that does not convert fails its own tests instead
of crashing the session.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import inspect
import io
import logging
import re
import sys
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from importlib import metadata
from typing import TYPE_CHECKING, Any, TypeAlias

from . import messages

# The accepted values live with the settings that validate them (a module the plugin
# imports cheaply); conversion uses the same lists.
from .errors import ConversionError as ConversionError  # re-exported for callers
from .settings import COMPUTE_UNITS, INPUT_DTYPES, PRECISIONS, TARGETS  # noqa: F401

if TYPE_CHECKING:
    import torch

#: The torch output nesting: ``"t"`` for a tensor, else ``[kind, [children]]``.
Structure: TypeAlias = "str | list[str | list[Structure]]"


@dataclass(frozen=True)
class ConversionOptions:
    """What, besides the model and example inputs, determines the converted program."""

    precision: str = "fp32"
    target: str = "iOS16"
    compute_units: str = "ALL"
    input_dtypes: str = "auto"
    input_names: tuple[str, ...] | None = None
    use_export: bool = False
    fp32_ops: frozenset[str] | None = None

    def describe(self) -> str:
        """Short human form used in messages, e.g. ``fp16 (target iOS16)``."""
        extra = ", torch.export" if self.use_export else ""
        if self.fp32_ops:
            extra += f", {len(self.fp32_ops)} ops kept in fp32"
        return f"{self.precision} (target {self.target}{extra})"

    def key_material(self) -> dict[str, Any]:
        data = asdict(self)
        data["fp32_ops"] = sorted(self.fp32_ops) if self.fp32_ops is not None else None
        data["input_names"] = list(self.input_names) if self.input_names else None
        return data


# --------------------------------------------------------------------------- keys

#: Bumped whenever the key material or the layout of a disk-cache entry changes.
CACHE_FORMAT = 2

_SOURCE_COMMENT = re.compile(r"\s+#\s.*$", re.MULTILINE)
_MANGLE = re.compile(r"___torch_mangle_\d+\.")


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "absent"


@functools.cache
def versions() -> tuple[tuple[str, str], ...]:
    """The versions a conversion depends on; part of every cache key (read once per process)."""
    return (
        ("cache-format", str(CACHE_FORMAT)),
        ("coremltools", _version("coremltools")),
        ("numpy", _version("numpy")),
        ("pytest-coreml-parity", _version("pytest-coreml-parity")),
        ("torch", _version("torch")),
    )


def _tensor_bytes(tensor: torch.Tensor) -> bytes:
    import torch

    t = tensor.detach().cpu().contiguous()
    if not t.numel():
        return b""
    return t.view(-1).view(torch.uint8).numpy().tobytes()


def _hash_tensor(h: Any, name: str, tensor: torch.Tensor) -> None:
    # ``h`` is a hashlib object; hashlib's private _Hash type is not importable at runtime.
    h.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}\0".encode())
    h.update(_tensor_bytes(tensor))


def graph_text(source: object) -> str:
    """The captured program as stable text: no source locations, no per-process mangling.

    ``torch.jit.trace``: the inlined graph (constants baked in). ``torch.export``: the
    graph module's code and its signature.
    """
    import torch

    if isinstance(source, torch.export.ExportedProgram):
        text = source.graph_module.code + "\n" + str(source.graph_signature)
    elif isinstance(source, torch.jit.ScriptModule):
        text = str(source.inlined_graph)
    else:
        raise TypeError(f"cannot key a captured {type(source).__name__}")
    return _MANGLE.sub("", _SOURCE_COMMENT.sub("", text))


def _walk_nodes(block: Any) -> Iterator[Any]:
    # torch._C.Block / Node are untyped pybind objects.
    for node in block.nodes():
        yield node
        for sub in node.blocks():
            yield from _walk_nodes(sub)


def _hash_constants(h: Any, source: object) -> None:
    """Graph constants at full precision (the text rounds tensor constants like ``{1}``)."""
    import torch

    if isinstance(source, torch.export.ExportedProgram):
        for name, value in sorted(source.constants.items()):
            if isinstance(value, torch.Tensor):
                _hash_tensor(h, f"constant {name}", value)
            else:
                h.update(f"constant {name}: {type(value).__qualname__}\0".encode())
        return
    assert isinstance(source, torch.jit.ScriptModule)
    for i, node in enumerate(_walk_nodes(source.inlined_graph)):
        if node.kind() != "prim::Constant" or not node.hasAttribute("value"):
            continue
        kind = node.kindOf("value")
        if kind == "t":
            _hash_tensor(h, f"constant {i}", node.t("value"))
        elif kind == "f":
            h.update(f"constant {i}: {node.f('value')!r}\0".encode())


def conversion_key(captured: Captured, options: ConversionOptions) -> str:
    """The cache key of converting ``captured`` with ``options``.

    Hashes what is converted, not where it came from: the captured program's text
    (source locations stripped, so a moved checkout still hits) and its constants,
    every parameter and buffer of the model (persistent or not), the input
    signature and names, the output structure, the options and :func:`versions`.
    """
    h = hashlib.sha256()
    h.update(b"program\0" + graph_text(captured.source).encode())
    _hash_constants(h, captured.source)
    for name, parameter in captured.torch_model.named_parameters(remove_duplicate=False):
        _hash_tensor(h, f"parameter {name}", parameter)
    for name, buffer in captured.torch_model.named_buffers(remove_duplicate=False):
        _hash_tensor(h, f"buffer {name}", buffer)
    h.update(repr(input_signature(captured.example_inputs)).encode())
    h.update(repr(captured.names).encode())
    h.update(repr((captured.structure, captured.leaf_dtypes)).encode())
    h.update(repr(sorted(options.key_material().items())).encode())
    h.update(repr(versions()).encode())
    return h.hexdigest()[:32]


def model_digest(
    torch_model: torch.nn.Module, example_inputs: Sequence[torch.Tensor], options: ConversionOptions
) -> str:
    """Capture ``torch_model`` and return its :func:`conversion_key` (prefer capturing once)."""
    return conversion_key(capture(torch_model, example_inputs, options), options)


def input_signature(example_inputs: Sequence[Any]) -> tuple[tuple[tuple[int, ...], str], ...]:
    """Shapes and dtypes of the example inputs (what the converted model is fixed to)."""
    return tuple((tuple(x.shape), str(x.dtype).replace("torch.", "")) for x in example_inputs)


# ----------------------------------------------------------------- output shape


def output_structure(value: object) -> Structure:
    """Describe the torch output nesting: ``"t"`` for a tensor, else (kind, children)."""
    import torch

    if isinstance(value, torch.Tensor):
        return "t"
    if isinstance(value, (tuple, list)):
        return ["tuple" if isinstance(value, tuple) else "list", [output_structure(v) for v in value]]
    raise ConversionError(
        f"the torch model returns a {type(value).__name__}; coreml_model supports "
        "a tensor or (nested) tuples/lists of tensors"
    )


def _flatten(value: Any, out: list[Any]) -> None:
    if isinstance(value, (tuple, list)):
        for v in value:
            _flatten(v, out)
    else:
        out.append(value)


def count_leaves(structure: Any) -> int:
    if structure == "t":
        return 1
    return sum(count_leaves(c) for c in structure[1])


def unflatten(structure: Any, leaves: Iterator[Any]) -> Any:
    """Rebuild the torch output nesting from flat leaves, in order."""
    if structure == "t":
        return next(leaves)
    kind, children = structure
    items = [unflatten(c, leaves) for c in children]
    return tuple(items) if kind == "tuple" else items


# ------------------------------------------------------------------- conversion


_PROGRESS = re.compile(r"\d+%\|.*\||(passes|ops)/s\]|^\s*$")


@contextlib.contextmanager
def quiet_conversion() -> Iterator[None]:
    """Silence coremltools' progress bars, version and renaming warnings, and its logs.

    Its error logs are dropped too: a failure raises, and :class:`ConversionError`
    carries the summary.

    Only around conversion: anything on stderr that is not a progress bar is
    written through afterwards, and other warnings still reach pytest.
    """
    logger = logging.getLogger("coremltools")
    level = logger.level
    buffer = io.StringIO()
    real_stderr = sys.stderr
    try:
        logger.setLevel(logging.CRITICAL)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".*has not been tested with coremltools")
            warnings.filterwarnings("ignore", message=r"(?s).*has been renamed to")
            # Deprecations inside torch.export/coremltools internals are not about the
            # user's model, and would be errors in suites run with -W error.
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            warnings.filterwarnings("ignore", category=FutureWarning)
            # ct.convert never closes the TemporaryDirectory it writes weights to; its
            # finalizer warns when convert returns. Harmless, and not the user's doing.
            warnings.filterwarnings(
                "ignore", message="Implicitly cleaning up <TemporaryDirectory", category=ResourceWarning
            )
            with contextlib.redirect_stderr(buffer):
                yield
    finally:
        logger.setLevel(level)
        kept = [
            seg
            for seg in re.split(r"[\r\n]", buffer.getvalue())
            if not _PROGRESS.search(seg)
        ]
        if kept:
            real_stderr.write("\n".join(kept) + "\n")


_OP_PATTERNS = (
    re.compile(r"convert function for op '([^']+)'"),
    re.compile(r"[Uu]nsupported (?:fx node|op|operator)[:\s]+'?([\w.:]+)'?"),
    re.compile(r"op(?:eration)? '([^']+)'"),
    re.compile(r'op(?:eration)? "([^"]+)"'),
    re.compile(r"(aten::\w+)"),
)


def summarize_error(exc: BaseException) -> tuple[str | None, str]:
    """(op name if the message names one, first informative line of the error)."""
    text = str(exc).strip() or type(exc).__name__
    op = None
    for pattern in _OP_PATTERNS:
        match = pattern.search(text)
        if match:
            op = match.group(1)
            break
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    reason = lines[0] if lines else text
    if len(reason) > 300:
        reason = reason[:297] + "..."
    return op, f"{type(exc).__name__}: {reason}"


def default_input_names(torch_model: Any, n: int) -> tuple[str, ...]:
    """The forward() parameter names when they fit, else x0, x1, ..."""
    try:
        params = [
            p.name
            for p in inspect.signature(torch_model.forward).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
    except (TypeError, ValueError):
        params = []
    if len(params) >= n and all(p.isidentifier() for p in params[:n]):
        return tuple(params[:n])
    return tuple(f"x{i}" for i in range(n))


def _model_name(torch_model: Any) -> str:
    return type(torch_model).__name__


@dataclass(frozen=True)
class Captured:
    """A torch model captured once: the program to convert and key, and its output structure."""

    torch_model: torch.nn.Module
    example_inputs: tuple[torch.Tensor, ...]
    #: A ``torch.jit.ScriptModule`` (trace) or ``torch.export.ExportedProgram`` (export).
    source: object
    structure: Structure
    leaf_dtypes: tuple[str, ...]
    names: tuple[str, ...]

    @property
    def model_name(self) -> str:
        return _model_name(self.torch_model)


def capture(
    torch_model: torch.nn.Module, example_inputs: Sequence[torch.Tensor], options: ConversionOptions
) -> Captured:
    """Run, then trace (or export) ``torch_model`` once: what both the key and ct.convert use.

    Raises :class:`ConversionError` when the model cannot be captured.
    """
    import torch

    examples = tuple(example_inputs)
    names = options.input_names or default_input_names(torch_model, len(examples))
    if len(names) != len(examples):
        raise ConversionError(
            f"{len(names)} input names {list(names)} for {len(examples)} example inputs"
        )
    torch_model = torch_model.eval()
    with quiet_conversion():
        try:
            with torch.no_grad():
                reference = torch_model(*examples)
                if options.use_export:
                    exported = torch.export.export(torch_model, examples)
                    if options.target not in ("iOS15",):
                        exported = exported.run_decompositions({})
                    source: object = exported
                else:
                    # Every bind captures (the key comes from the program), so skip
                    # check_trace's second trace and graph run: it doubled capture time,
                    # and assert_parity compares against eager torch anyway.
                    # (torch.jit.trace is not annotated in torch's stubs.)
                    source = torch.jit.trace(  # type: ignore[no-untyped-call]
                        torch_model, examples, check_trace=False
                    )
        except Exception as exc:
            op, reason = summarize_error(exc)
            how = "torch.export" if options.use_export else "torch.jit.trace"
            op_part = f": op '{op}'" if op else ""
            raise ConversionError(
                f"{how} could not capture {_model_name(torch_model)}{op_part}: {reason}",
                detail=str(exc),
            ) from exc
    structure = output_structure(reference)
    leaves: list[Any] = []
    _flatten(reference, leaves)
    return Captured(
        torch_model=torch_model,
        example_inputs=examples,
        source=source,
        structure=structure,
        leaf_dtypes=tuple(str(t.dtype).replace("torch.", "") for t in leaves),
        names=tuple(names),
    )


def convert_model(
    torch_model: torch.nn.Module, example_inputs: Sequence[torch.Tensor], options: ConversionOptions
) -> Any:
    """Trace or export ``torch_model`` and convert it to an ML Program ``MLModel``.

    Raises :class:`ConversionError` with a summary such as
    ``coremltools could not convert ComplexDiv at fp16 (target iOS16): op 'xyz': ...``.
    (The return type is coremltools' untyped ``MLModel``.)
    """
    return convert_captured(capture(torch_model, example_inputs, options), options)


def convert_with_structure(
    torch_model: torch.nn.Module, example_inputs: Sequence[torch.Tensor], options: ConversionOptions
) -> tuple[Any, Structure]:
    """:func:`convert_model`, also returning the torch output nesting (see :func:`unflatten`)."""
    captured = capture(torch_model, example_inputs, options)
    return convert_captured(captured, options), captured.structure


def convert_captured(captured: Captured, options: ConversionOptions) -> Any:
    """``ct.convert`` the captured program (no second trace); returns an untyped ``MLModel``."""
    import numpy as np
    import torch

    from ._coremltools import import_coremltools

    ct = import_coremltools()
    where = f"{captured.model_name} at {options.describe()}"
    inputs = []
    for name, x in zip(captured.names, captured.example_inputs, strict=True):
        kwargs: dict[str, Any] = {"name": name, "shape": tuple(x.shape)}
        if x.dtype.is_floating_point:
            if options.input_dtypes == "fp32":
                kwargs["dtype"] = np.float32
            elif options.input_dtypes == "fp16":
                kwargs["dtype"] = np.float16
        elif x.dtype in (torch.int32, torch.int64, torch.int16, torch.int8, torch.uint8):
            kwargs["dtype"] = np.int32
        elif x.dtype == torch.bool:
            kwargs["dtype"] = bool
        inputs.append(ct.TensorType(**kwargs))

    if options.precision == "fp32":
        precision: object = ct.precision.FLOAT32
    elif options.precision == "fp16":
        if options.fp32_ops:
            keep = frozenset(options.fp32_ops)
            precision = ct.transform.FP16ComputePrecision(op_selector=lambda op: op.name not in keep)
        else:
            precision = ct.precision.FLOAT16
    else:
        raise ConversionError(f"unknown precision {options.precision!r}")

    convert_kwargs: dict[str, object] = {
        "inputs": inputs,
        "convert_to": "mlprogram",
        "minimum_deployment_target": getattr(ct.target, options.target),
        "compute_precision": precision,
        "compute_units": getattr(ct.ComputeUnit, options.compute_units),
    }
    floating = ("float16", "float32", "float64", "bfloat16")
    if options.input_dtypes in ("fp32", "fp16") and all(d in floating for d in captured.leaf_dtypes):
        io_dtype = np.float32 if options.input_dtypes == "fp32" else np.float16
        convert_kwargs["outputs"] = [
            ct.TensorType(name=f"output{i}", dtype=io_dtype) for i in range(len(captured.leaf_dtypes))
        ]
    if sys.platform != "darwin":
        convert_kwargs["skip_model_load"] = True
    with quiet_conversion():
        try:
            return ct.convert(captured.source, **convert_kwargs)
        except Exception as exc:
            op, reason = summarize_error(exc)
            op_part = f": op '{op}'" if op else ""
            hint = explain_numpy_error(exc)
            if hint is not None:
                reason = f"{reason}; {hint}"
            raise ConversionError(
                f"coremltools could not convert {where}{op_part}: {reason}", detail=str(exc)
            ) from exc


# ------------------------------------------------------------- numpy >= 2.4


def _release(version: str) -> tuple[int, ...]:
    """Leading numeric release of a version string: ``"2.4.0rc1"`` -> ``(2, 4, 0)``."""
    match = re.match(r"\s*v?(\d+(?:\.\d+)*)", version)
    if match is None:
        return ()
    return tuple(int(part) for part in match.group(1).split("."))


def numpy_coremltools_warning(numpy_version: str, coremltools_version: str) -> str | None:
    """The report-header warning when numpy >= 2.4 meets coremltools <= 9.0, else None."""
    numpy_release, ct_release = _release(numpy_version), _release(coremltools_version)
    if not numpy_release or not ct_release:
        return None
    if numpy_release[:2] >= (2, 4) and ct_release[:2] <= (9, 0):
        return messages.NUMPY_TOO_NEW_HEADER.format(numpy=numpy_version, coremltools=coremltools_version)
    return None


def explain_numpy_error(exc: BaseException) -> str | None:
    """What happened and the fix, when ``exc`` is numpy 2.4's scalar-conversion TypeError."""
    if isinstance(exc, TypeError) and messages.NUMPY_SCALAR_ERROR in str(exc):
        return messages.NUMPY_TOO_NEW_EXPLANATION.format(numpy=_version("numpy"))
    return None
