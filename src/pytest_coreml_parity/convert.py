"""Trace (or export) a torch model and convert it with coremltools, quietly.

``ConversionOptions`` is everything besides the model and its example inputs
that changes the converted program; it is part of every cache key. Conversion
errors become :class:`ConversionError` with a one-line summary naming the op
and the reason, so a model that does not convert fails its own tests instead
of crashing the session.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import inspect
import io
import logging
import os
import re
import sys
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, TypeAlias

from . import messages, outputs, shims
from ._coremltools import explain_hidden_torchao, ignore_coremltools_noise
from ._values import package_version
from .canonical import canonical_text, function_key, hash_tensor
from .compress import compress, effective_target, is_compressed, optimization_key
from .ct_types import build as build_ct_types
from .error_text import cause_reason

# The accepted values live with the settings that validate them (a module the plugin
# imports cheaply); conversion uses the same lists.
from .errors import ConversionError as ConversionError  # re-exported for callers
from .precisions import PRECISIONS as PRECISION_TABLE
from .precisions import is_exact
from .settings import (  # noqa: F401
    COMPUTE_UNITS,
    INPUT_DTYPES,
    PRECISIONS,
    TARGETS,
    USER_CONVERT_FIXTURE,
)

if TYPE_CHECKING:
    import torch

#: The torch output nesting, with keys (outputs.py): ``"t"`` for a tensor, else
#: ``[kind, [children]]`` or ``[kind, [children], [keys], [dropped]]``.
Structure: TypeAlias = outputs.Structure


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
    #: Precision ``custom``: the user's OptimizationConfig (or list). Compared and keyed
    #: through ``optimization_key``, its stable text (compress.optimization_key).
    optimization: Any = field(default=None, compare=False, repr=False)
    optimization_key: str | None = None
    #: Extra ``ct.convert`` keywords (marker ``convert_kwargs=``), keyed by their
    #: canonical text in ``convert_kwargs_key``; ``inputs`` replaces the plugin's.
    convert_kwargs: Any = field(default=None, compare=False, repr=False)
    convert_kwargs_key: str | None = None
    #: The user's ``coreml_convert`` callable, keyed by :func:`function_key`.
    user_convert: Any = field(default=None, compare=False, repr=False)
    user_convert_key: str | None = None
    #: Declare the buffers ``forward`` updates as iOS18 states (the default recipe).
    #: False converts as coremltools does without ``states=``: it freezes them.
    declare_states: bool = True
    #: Register the converter shims the installed coremltools lacks (shims.py) while
    #: converting. Keyed through the registry itself (shims.registry_key), not this flag.
    shims: bool = True

    def __post_init__(self) -> None:
        if self.optimization is not None and self.optimization_key is None:
            object.__setattr__(self, "optimization_key", optimization_key(self.optimization))
        if self.convert_kwargs and self.convert_kwargs_key is None:
            object.__setattr__(self, "convert_kwargs_key", canonical_text(self.convert_kwargs))
        if self.user_convert is not None and self.user_convert_key is None:
            object.__setattr__(self, "user_convert_key", function_key(self.user_convert))

    @property
    def conversion_target(self) -> str:
        """The target converted at: ``target``, raised when a compressed precision needs it."""
        return effective_target(self.target, self.precision)

    def describe(self) -> str:
        """Short human form used in messages, e.g. ``fp16 (target iOS16)``."""
        extra = ", torch.export" if self.use_export else ""
        if self.user_convert is not None:
            extra += ", coreml_convert"
        if self.fp32_ops:
            extra += f", {len(self.fp32_ops)} ops kept in fp32"
        if not self.shims:
            extra += ", converter shims off"
        target = self.conversion_target
        if target != self.target:
            where = messages.TARGET_RAISED.format(
                target=target, configured=self.target, precision=self.precision
            )
            return f"{self.precision} ({where}{extra})"
        return f"{self.precision} (target {self.target}{extra})"

    def key_material(self) -> dict[str, Any]:
        data = asdict(
            dataclasses.replace(self, optimization=None, convert_kwargs=None, user_convert=None)
        )
        for name in ("optimization", "convert_kwargs", "user_convert"):
            data.pop(name)
        # Keys of conversions without these stay as they were.
        for name in ("optimization_key", "convert_kwargs_key", "user_convert_key"):
            if data[name] is None:
                data.pop(name)
        if self.declare_states:  # keys stay as they were
            data.pop("declare_states")
        data.pop("shims")  # conversion_key hashes the registry the flag leads to
        data["fp32_ops"] = sorted(self.fp32_ops) if self.fp32_ops is not None else None
        data["input_names"] = list(self.input_names) if self.input_names else None
        return data


# --------------------------------------------------------------------------- keys

#: Bumped whenever the key material or the layout of a disk-cache entry changes.
#: Part of every key and every entry's manifest: bumped when keys change meaning
#: (3: one canonicaliser for options and OptimizationConfigs, canonical.py).
CACHE_FORMAT = 3

_SOURCE_COMMENT = re.compile(r"\s+#\s.*$", re.MULTILINE)
_MANGLE = re.compile(r"___torch_mangle_\d+\.")


@functools.cache
def versions() -> tuple[tuple[str, str], ...]:
    """The versions a conversion depends on; part of every cache key (read once per process)."""
    return (
        ("cache-format", str(CACHE_FORMAT)),
        ("coremltools", package_version("coremltools")),
        ("numpy", package_version("numpy")),
        ("pytest-coreml-parity", package_version("pytest-coreml-parity")),
        ("torch", package_version("torch")),
    )


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
                hash_tensor(h, f"constant {name}", value)
            else:
                h.update(f"constant {name}: {type(value).__qualname__}\0".encode())
        return
    assert isinstance(source, torch.jit.ScriptModule)
    for i, node in enumerate(_walk_nodes(source.inlined_graph)):
        if node.kind() != "prim::Constant" or not node.hasAttribute("value"):
            continue
        kind = node.kindOf("value")
        if kind == "t":
            hash_tensor(h, f"constant {i}", node.t("value"))
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
        hash_tensor(h, f"parameter {name}", parameter)
    for name, buffer in captured.torch_model.named_buffers(remove_duplicate=False):
        hash_tensor(h, f"buffer {name}", buffer)
    h.update(repr(input_signature(captured.example_inputs)).encode())
    h.update(repr(captured.names).encode())
    h.update(repr((captured.structure, captured.leaf_dtypes)).encode())
    if captured.states:  # declared as states: a different program (stateless keys unchanged)
        h.update(repr(("states", captured.states)).encode())
    h.update(repr(sorted(options.key_material().items())).encode())
    h.update(repr(versions()).encode())
    # The converter ops this conversion sees: the shims registered and any lowering a
    # user registered (a fix in a conftest must not be served a cached failure).
    h.update(b"torch ops\0" + shims.registry_key(options.shims, function_key).encode())
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
    """The torch output's structure, by key (:func:`.outputs.structure_of`)."""
    try:
        return outputs.structure_of(value)
    except outputs.OutputError as exc:
        raise ConversionError(str(exc)) from None


count_leaves = outputs.count
unflatten = outputs.unflatten


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
            ignore_coremltools_noise()
            warnings.filterwarnings("ignore", message=r"(?s).*has been renamed to")
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
    return op, f"{type(exc).__name__}: {cause_reason(text)}"


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


@contextlib.contextmanager
def unfused_attention() -> Iterator[None]:
    """Capture ``nn.MultiheadAttention`` / ``nn.TransformerEncoderLayer`` on their
    composite path: the fused ``_native_multi_head_attention`` fast path, which they take
    in eval mode under no_grad, has no coremltools lowering. (coremltools' docs trace
    with grad enabled, which avoids it as long as a parameter requires grad.)"""
    import torch

    before = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        yield
    finally:
        torch.backends.mha.set_fastpath_enabled(before)


@contextlib.contextmanager
def restored_buffers(torch_model: torch.nn.Module) -> Iterator[list[str]]:
    """Put every buffer back as it was on exit, and name (in the yielded list) those the
    body updated: in place, by value or by reassignment.

    Capturing runs ``forward``, which advances a stateful model's buffers (a KV cache);
    the test's model must start where the user made it, and the conversion must see
    the initial values, not those of a step already taken.
    """
    import torch

    before = [
        (name, tensor, tensor._version, tensor.detach().clone())
        for name, tensor in torch_model.named_buffers()
    ]
    changed: list[str] = []
    try:
        yield changed
    finally:
        now = dict(torch_model.named_buffers())
        with torch.no_grad():
            for name, tensor, version, value in before:
                current = now.get(name)
                if current is not tensor:
                    owner, _, leaf = name.rpartition(".")
                    setattr(torch_model.get_submodule(owner), leaf, tensor)
                elif tensor._version == version:
                    continue
                changed.append(name)
                tensor.copy_(value)
                if tensor.grad_fn is not None:  # updated outside no_grad (a user's trace)
                    tensor.detach_()


#: The first release of each family whose ML Programs hold states (iOS18's opset).
_STATE_RELEASES = {"iOS": 18, "macOS": 15, "watchOS": 11, "tvOS": 18}


def state_target(target: str) -> str:
    """``target``, raised to the first release of its family with states (``iOS16`` -> ``iOS18``)."""
    for family, floor in _STATE_RELEASES.items():
        version = target[len(family):]
        if target.startswith(family) and version.isdigit():
            return target if int(version) >= floor else f"{family}{floor}"
    return target


def state_specs(torch_model: torch.nn.Module, names: Sequence[str]) -> tuple[tuple[str, tuple[int, ...]], ...]:
    """(name, shape) of the floating-point buffers among ``names``: the states a stateful
    conversion declares (Core ML states hold float16; an integer counter cannot be one)."""
    buffers = dict(torch_model.named_buffers())
    return tuple(
        (name, tuple(buffers[name].shape)) for name in names if buffers[name].is_floating_point()
    )


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
    #: (name, shape) of each buffer ``forward`` updates: the states to declare.
    states: tuple[tuple[str, tuple[int, ...]], ...] = ()

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
        # The program is fixed to the example inputs' shapes (and parity is checked
        # against eager torch), which is what the tracer warns about; under -W error its
        # warning, raised inside Tensor.__bool__, would surface as a SystemError.
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)  # type: ignore[attr-defined]
        try:
            with torch.no_grad(), restored_buffers(torch_model) as updated:
                reference = torch_model(*examples)
            structure = output_structure(reference)
            # ModelOutput, dicts, non-tensor leaves: capture the tensors, flat, by key.
            keyed = outputs.is_keyed(structure)
            program = outputs.keyed_module(torch_model, structure) if keyed else torch_model
            # unfused_attention: nn.MultiheadAttention's fused fast path (taken under
            # no_grad in eval mode) is an op coremltools cannot convert.
            with torch.no_grad(), restored_buffers(torch_model), unfused_attention():
                if options.use_export:
                    exported = torch.export.export(program, examples)
                    if options.target not in ("iOS15",):
                        exported = exported.run_decompositions({})
                    source: object = exported
                else:
                    # Every bind captures (the key comes from the program), so skip
                    # check_trace's second trace and graph run: it doubled capture time,
                    # and assert_parity compares against eager torch anyway.
                    # (torch.jit.trace is not annotated in torch's stubs.)
                    source = torch.jit.trace(  # type: ignore[no-untyped-call]
                        program, examples, check_trace=False
                    )
        except ConversionError:
            raise
        except Exception as exc:
            op, reason = summarize_error(exc)
            how = "torch.export" if options.use_export else "torch.jit.trace"
            op_part = f": op '{op}'" if op else ""
            raise ConversionError(
                f"{how} could not capture {_model_name(torch_model)}{op_part}: {reason}",
                detail=str(exc),
            ) from exc
    leaves = outputs.leaves(reference, structure)
    return Captured(
        torch_model=torch_model,
        example_inputs=examples,
        source=source,
        structure=structure,
        leaf_dtypes=tuple(str(t.dtype).replace("torch.", "") for t in leaves),
        names=tuple(names),
        states=state_specs(torch_model, updated),
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


def convert_captured(captured: Captured, options: ConversionOptions) -> Any:
    """``ct.convert`` the captured program (no second trace); returns an untyped ``MLModel``."""
    import numpy as np
    import torch

    from ._coremltools import import_coremltools

    ct = import_coremltools()
    if options.user_convert is not None:  # the test's own recipe (coreml_convert)
        return convert_with_user_function(captured, options)
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

    compressed = is_compressed(options.precision)
    precision = compute_precision(ct, options, captured.source)

    convert_kwargs: dict[str, object] = {
        "inputs": inputs,
        "convert_to": "mlprogram",
        "minimum_deployment_target": getattr(ct.target, options.conversion_target),
        "compute_precision": precision,
        "compute_units": getattr(ct.ComputeUnit, options.compute_units),
    }
    floating = ("float16", "float32", "float64", "bfloat16")
    io: dict[str, Any] = {}
    if options.input_dtypes in ("fp32", "fp16") and all(d in floating for d in captured.leaf_dtypes):
        io["dtype"] = np.float32 if options.input_dtypes == "fp32" else np.float16
        convert_kwargs["outputs"] = [
            ct.TensorType(name=f"output{i}", **io) for i in range(len(captured.leaf_dtypes))
        ]
    if outputs.is_keyed(captured.structure):  # Core ML output names follow the keys
        convert_kwargs["outputs"] = [
            ct.TensorType(name=name, **io) for name in outputs.coreml_names(captured.structure)
        ]
    if options.convert_kwargs:  # the marker's convert_kwargs= win over the plugin's
        if "outputs" in options.convert_kwargs:
            convert_kwargs.pop("outputs", None)
        convert_kwargs.update(build_ct_types(options.convert_kwargs, ct))
    if captured.states and options.declare_states and "states" not in convert_kwargs:
        # Core ML states hold float16 only (ct: "State only support fp16 dtype"), also in
        # an fp32 program, which then casts around each state access. iOS18 brought states.
        convert_kwargs["states"] = [
            ct.StateType(wrapped_type=ct.TensorType(shape=shape, dtype=np.float16), name=name)
            for name, shape in captured.states
        ]
        if "minimum_deployment_target" not in (options.convert_kwargs or {}):
            convert_kwargs["minimum_deployment_target"] = getattr(
                ct.target, state_target(options.conversion_target)
            )
    if sys.platform != "darwin":
        convert_kwargs["skip_model_load"] = True
    with quiet_conversion(), shims.registered(options.shims):
        try:
            mlmodel = ct.convert(captured.source, **convert_kwargs)
            if compressed:
                mlmodel = compress(
                    mlmodel, options.precision, options.optimization, captured.example_inputs
                )
        except Exception as exc:
            op, reason = summarize_error(exc)
            op_part = f": op '{op}'" if op else ""
            hint = explain_numpy_error(exc) or explain_hidden_torchao(exc)
            if hint is not None:
                reason = f"{reason}; {hint}"
            raise ConversionError(
                f"coremltools could not convert {where}{op_part}: {reason}", detail=str(exc)
            ) from exc
    check_fp32_ops(precision)
    return mlmodel


def check_fp32_ops(precision: object) -> None:
    """A pinned ``fp32_ops`` name that matched no op is an error naming the nearest ones."""
    from .op_names import Fp32Selector

    selector = getattr(precision, "op_selector", None)
    message = selector.unmatched_message() if isinstance(selector, Fp32Selector) else None
    if message is not None:
        raise ConversionError(message)


def compute_precision(ct: Any, options: ConversionOptions, traced: object = None) -> object:
    """The ``compute_precision`` for ct.convert (or ``coreml_convert``): FLOAT32, FLOAT16, or
    ``FP16ComputePrecision(op_selector=...)`` keeping ``options.fp32_ops`` in float32
    (``traced``, the captured trace, names ops by their source lines)."""
    row = PRECISION_TABLE.get(options.precision)
    if row is not None and is_exact(row.name):
        return ct.precision.FLOAT32
    if row is not None and not row.mixed:  # fp16, and the compressed ones built on it
        if options.fp32_ops:  # internal or stable names (op_names.py); unmatched ones fail
            from .op_names import Fp32Selector

            selector = Fp32Selector(options.fp32_ops, traced=traced)
            return ct.transform.FP16ComputePrecision(op_selector=selector)
        return ct.precision.FLOAT16
    raise ConversionError(f"unknown precision {options.precision!r}")


def convert_with_user_function(captured: Captured, options: ConversionOptions) -> Any:
    """Convert by calling the test's ``coreml_convert`` (``options.user_convert``).

    It gets the torch model, the example inputs and the ``compute_precision`` this
    precision (or the fix search) asks for, and returns an ``MLModel`` or a path to an
    ``.mlpackage``. Compressed precisions compress what it returns, as for our own
    conversion. Its exceptions become :class:`ConversionError` naming the fixture.
    """
    from ._coremltools import import_coremltools

    ct = import_coremltools()
    where = f"{captured.model_name} at {options.describe()}"
    precision = compute_precision(ct, options, captured.source)
    # restored_buffers: its trace runs forward, which advances a stateful model's buffers.
    with quiet_conversion(), restored_buffers(captured.torch_model), shims.registered(options.shims):
        try:
            result = options.user_convert(captured.torch_model, captured.example_inputs, precision)
        except Exception as exc:
            _op, reason = summarize_error(exc)
            raise ConversionError(
                messages.USER_CONVERT_FAILED.format(
                    fixture=USER_CONVERT_FIXTURE, where=where, reason=reason
                ),
                detail=str(exc),
            ) from exc
    if isinstance(result, (str, os.PathLike)):
        path = os.fspath(result)
        if not os.path.isdir(path):
            raise ConversionError(
                messages.USER_CONVERT_BAD_RETURN.format(
                    fixture=USER_CONVERT_FIXTURE, where=where, got=f"{path!r}, which does not exist"
                )
            )
        result = ct.models.MLModel(path, skip_model_load=sys.platform != "darwin")
    if not isinstance(result, ct.models.MLModel):
        raise ConversionError(
            messages.USER_CONVERT_BAD_RETURN.format(
                fixture=USER_CONVERT_FIXTURE, where=where, got=f"a {type(result).__name__}"
            )
        )
    check_fp32_ops(precision)  # pinned names the function's conversion never saw fail too
    if is_compressed(options.precision):
        with quiet_conversion():
            try:
                result = compress(
                    result, options.precision, options.optimization, captured.example_inputs
                )
            except Exception as exc:
                _op, reason = summarize_error(exc)
                raise ConversionError(
                    f"coremltools could not compress {where}: {reason}", detail=str(exc)
                ) from exc
    return result


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
        return messages.NUMPY_TOO_NEW_EXPLANATION.format(numpy=package_version("numpy"))
    return None
