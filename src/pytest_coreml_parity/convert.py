"""Trace (or export) a torch model and convert it with coremltools, quietly.

``ConversionOptions`` is everything besides the model and its example inputs
that changes the converted program; it is part of every cache key. Conversion
errors become :class:`ConversionError` with a one-line summary naming the op
and the reason, so a model that does not convert fails its own tests instead
of crashing the session.
"""

from __future__ import annotations

import contextlib
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
from pathlib import Path
from typing import Any

# The accepted values live with the settings that validate them (a module the plugin
# imports cheaply); conversion uses the same lists.
from .errors import ConversionError
from .settings import COMPUTE_UNITS, INPUT_DTYPES, PRECISIONS, TARGETS  # noqa: F401


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


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "absent"


def _source_bytes(cls: type) -> bytes:
    try:
        path = inspect.getsourcefile(cls)
    except (TypeError, OSError):
        path = None
    if not path:
        return b""
    try:
        return Path(path).read_bytes()  # contents, not path: a moved checkout still hits
    except OSError:
        return b""


def model_digest(torch_model: Any, example_inputs: Sequence[Any], options: ConversionOptions) -> str:
    """A stable key for (model code and weights, input signature, options, versions).

    The model is identified by the qualified names and source files (their
    contents) of all its module classes plus its ``state_dict`` bytes, so a
    fresh instance of an unchanged model hits the cache and an edited
    ``forward`` or retrained weight does not.
    """
    h = hashlib.sha256()
    seen: set[type] = set()
    for module in torch_model.modules():
        cls = type(module)
        if cls in seen:
            continue
        seen.add(cls)
        h.update(f"{cls.__module__}.{cls.__qualname__}\0".encode())
        if not cls.__module__.startswith("torch."):
            h.update(_source_bytes(cls))
    for name, tensor in torch_model.state_dict().items():
        h.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}\0".encode())
        t = tensor.detach().cpu().contiguous()
        h.update(t.view(-1).view(_byte_dtype()).numpy().tobytes() if t.numel() else b"")
    h.update(repr(input_signature(example_inputs)).encode())
    h.update(repr(sorted(options.key_material().items())).encode())
    h.update(f"coremltools={_version('coremltools')} torch={_version('torch')}".encode())
    h.update(f"pytest-coreml-parity={_version('pytest-coreml-parity')}".encode())
    return h.hexdigest()[:32]


def _byte_dtype() -> Any:
    import torch

    return torch.uint8


def input_signature(example_inputs: Sequence[Any]) -> tuple[tuple[tuple[int, ...], str], ...]:
    """Shapes and dtypes of the example inputs (what the converted model is fixed to)."""
    return tuple((tuple(x.shape), str(x.dtype).replace("torch.", "")) for x in example_inputs)


# ----------------------------------------------------------------- output shape


def output_structure(value: Any) -> Any:
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


def convert_model(torch_model: Any, example_inputs: Sequence[Any], options: ConversionOptions) -> Any:
    """Trace or export ``torch_model`` and convert it to an ML Program ``MLModel``.

    Raises :class:`ConversionError` with a summary such as
    ``coremltools could not convert ComplexDiv at fp16 (target iOS16): op 'xyz': ...``.
    """
    return convert_with_structure(torch_model, example_inputs, options)[0]


def convert_with_structure(
    torch_model: Any, example_inputs: Sequence[Any], options: ConversionOptions
) -> tuple[Any, Any]:
    """:func:`convert_model`, also returning the torch output nesting (see :func:`unflatten`)."""
    import numpy as np
    import torch

    from ._coremltools import import_coremltools

    ct = import_coremltools()
    where = f"{_model_name(torch_model)} at {options.describe()}"
    names = options.input_names or default_input_names(torch_model, len(example_inputs))
    if len(names) != len(example_inputs):
        raise ConversionError(
            f"{len(names)} input names {list(names)} for {len(example_inputs)} example inputs"
        )
    torch_model = torch_model.eval()
    with quiet_conversion():
        try:
            with torch.no_grad():
                reference = torch_model(*example_inputs)
                if options.use_export:
                    source: Any = torch.export.export(torch_model, tuple(example_inputs))
                    if options.target not in ("iOS15",):
                        source = source.run_decompositions({})
                else:
                    source = torch.jit.trace(torch_model, tuple(example_inputs))
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
        inputs = []
        for name, x in zip(names, example_inputs, strict=True):
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
            precision: Any = ct.precision.FLOAT32
        elif options.precision == "fp16":
            if options.fp32_ops:
                keep = frozenset(options.fp32_ops)
                precision = ct.transform.FP16ComputePrecision(
                    op_selector=lambda op: op.name not in keep
                )
            else:
                precision = ct.precision.FLOAT16
        else:
            raise ConversionError(f"unknown precision {options.precision!r}")

        kwargs = {
            "inputs": inputs,
            "convert_to": "mlprogram",
            "minimum_deployment_target": getattr(ct.target, options.target),
            "compute_precision": precision,
            "compute_units": getattr(ct.ComputeUnit, options.compute_units),
        }
        if options.input_dtypes in ("fp32", "fp16") and all(
            t.dtype.is_floating_point for t in leaves
        ):
            io_dtype = np.float32 if options.input_dtypes == "fp32" else np.float16
            kwargs["outputs"] = [ct.TensorType(name=f"output{i}", dtype=io_dtype) for i in range(len(leaves))]
        if sys.platform != "darwin":
            kwargs["skip_model_load"] = True
        try:
            return ct.convert(source, **kwargs), structure
        except Exception as exc:
            op, reason = summarize_error(exc)
            op_part = f": op '{op}'" if op else ""
            raise ConversionError(
                f"coremltools could not convert {where}{op_part}: {reason}", detail=str(exc)
            ) from exc
