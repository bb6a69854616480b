"""torch model -> Core AI program (coreai-torch), at fp32, fp16 or mixed precision.

The recipe the team measured on Linux::

    ep = torch.export.export(model, inputs).run_decompositions(coreai_torch.get_decomp_table())
    ep = coreai_opt.casting.cast_fp32_to_fp16(ep, ignored_ops=...)      # fp16 / mixed only
    program = coreai_torch.TorchConverter().add_exported_program(ep).to_coreai()

coreai-torch has no precision argument: fp16 comes from coreai-opt's casting pass, which
also makes the program's inputs and outputs fp16; ops named in ``fp32_ops`` are kept in
fp32 with boundary casts ("mixed"). Every failure becomes the package's ConversionError
with a one-line summary. torch and coreai are imported inside the functions only.
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import re
import tempfile
import traceback
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from .. import messages
from ..errors import ConversionError, SettingError
from ..precisions import is_exact
from .availability import coreai_unavailable_reason, quiet_coreai_warnings
from .errors import CoreAIUnavailableError
from .program import (
    ASSET_NAME,
    PRECISIONS,
    CoreAIProgram,
    OpInfo,
    TensorSpec,
    flatten_structure,
    specs_to_json,
)

#: The mixed-precision starting point measured on complex division: elementwise
#: arithmetic in fp32 removed all 15 nans while everything else stays fp16.
ARITHMETIC_FP32_OPS: frozenset[str] = frozenset({"mul", "add", "sub", "div"})

_DTYPES = {
    "float16": "float16",
    "float32": "float32",
    "bfloat16": "bfloat16",
    "int8": "int8",
    "int16": "int16",
    "int32": "int32",
    "int64": "int64",
    "uint8": "uint8",
    "bool": "bool",
}
_SUMMARY_TYPE = re.compile(r"NDArray \((?P<dtype>\w+)(?:, (?P<shape>[^)]*))?\)")


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    first = text.splitlines()[0] if text else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def _check_precision(precision: str, fp32_ops: frozenset[str] | None) -> frozenset[str]:
    if precision not in PRECISIONS:
        raise SettingError(
            f"unknown Core AI precision {precision!r} (known: {', '.join(PRECISIONS)})"
        )
    ops = frozenset(fp32_ops or ())
    if is_exact(precision) and ops:
        raise SettingError(
            "fp32_ops only applies to 'fp16' or 'mixed' (everything is fp32 at 'fp32')"
        )
    if precision == "mixed" and not ops:
        raise SettingError(
            "precision 'mixed' needs fp32_ops, e.g. frozenset({'mul', 'add', 'sub', 'div'})"
        )
    return ops


def op_names(target: Any) -> frozenset[str]:
    """The names an ``fp32_ops`` entry may use for an FX node's target.

    ``torch.ops.aten.mul.Tensor`` answers to ``"mul"``, ``"aten.mul"`` and ``"aten.mul.Tensor"``.
    """
    full = str(target)  # "aten.mul.Tensor"
    parts = full.split(".")
    names = {full}
    if len(parts) >= 2:
        names.add(parts[1])
        names.add(".".join(parts[:2]))
    return frozenset(names)


def unmatched_aten_ops(exported: Any, fp32_ops: frozenset[str]) -> None:
    """Raise ConversionError when an ``fp32_ops`` name matches no aten op of ``exported``."""
    from .._suggest import close_matches

    known: set[str] = set()
    for node in exported.graph.nodes:
        if node.op == "call_function":
            known |= op_names(node.target)
    missing = sorted(fp32_ops - known)
    if missing:
        short = sorted(n for n in known if "." not in n)
        nearest = "; ".join(f"{m!r}: nearest {close_matches(m, short, n=3) or 'none'}" for m in missing)
        raise ConversionError(
            messages.COREAI_FP32_OPS_UNMATCHED.format(missing=missing, nearest=nearest, known=", ".join(short))
        )


def fp32_predicate(fp32_ops: frozenset[str]) -> Callable[[Any], bool]:
    """The ``ignored_ops`` predicate for coreai-opt: keep nodes whose op is named in fp32_ops."""

    def keep_fp32(node: Any) -> bool:
        return node.op == "call_function" and bool(op_names(node.target) & fp32_ops)

    return keep_fp32


def _parse_summary_type(text: str) -> tuple[str, tuple[int, ...]]:
    match = _SUMMARY_TYPE.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"unrecognized I/O type {text!r}")
    dtype = _DTYPES.get(match["dtype"].lower())
    if dtype is None:
        raise ValueError(f"unsupported I/O dtype {match['dtype']!r}")
    shape_text = (match["shape"] or "").strip()
    shape = tuple(int(d) for d in shape_text.split("×")) if shape_text else ()
    return dtype, shape


def _io_specs(asset: Any) -> tuple[list[TensorSpec], list[TensorSpec]]:
    """The main function's inputs and outputs, in order, from the saved asset's summary."""
    summary = asset.summary(include_statistics=False)
    if summary is None:
        raise ValueError("the saved asset has no program")

    def specs(pairs: Sequence[tuple[str, str]]) -> list[TensorSpec]:
        out = []
        for name, type_text in pairs:
            dtype, shape = _parse_summary_type(type_text)
            out.append(TensorSpec(name, shape, dtype))
        return out

    return specs(summary.function_inputs("main")), specs(summary.function_outputs("main"))


def _op_types(program: Any) -> dict[int, str]:
    """Core AI op id -> op type (``"coreai.decomposable.broadcasting_mul"``).

    The one private coreai-torch call of this module: ``source_annotator._build_coreai_op_map``
    (coreai-torch 0.4.3) walks the MLIR module and keys operations by their ``coreai`` id,
    the id the interpreter's intermediate logger reports. Tested in tests/coreai/test_record.py.
    """
    from coreai_torch.debugging import source_annotator

    build_op_map = getattr(source_annotator, "_build_coreai_op_map")  # noqa: B009
    return {int(op_id): str(op.name) for op_id, op in build_op_map(program).items()}


def _op_table(program: Any, exported: Any) -> list[OpInfo]:
    """One OpInfo per Core AI op with an id: type, user source line, torch node it came from."""
    from coreai_torch.debugging.source_annotator import source_locations_by_op_id
    from coreai_torch.debugging.torch_utils import get_torch_to_coreai_output_mapping

    types = _op_types(program)
    lines: dict[int, str] = {}
    for op_id, where in source_locations_by_op_id(program).items():
        if getattr(where, "line", 0):
            lines[int(op_id)] = f"{where.filename}:{where.line}"
    targets = {
        node.name: str(node.target) for node in exported.graph.nodes if node.op == "call_function"
    }
    torch_nodes: dict[int, str] = {}
    for node_name, mapping in get_torch_to_coreai_output_mapping(program).items():
        torch_nodes.setdefault(int(mapping.target_op_id), node_name)
    skip = {"builtin.module", "coreai.graph", "coreai.output", "coreai.constant"}
    return [
        OpInfo(
            op_id=op_id,
            op_type=op_type,
            source_line=lines.get(op_id),
            torch_node=torch_nodes.get(op_id),
            torch_target=targets.get(torch_nodes.get(op_id, "")),
        )
        for op_id, op_type in sorted(types.items())
        if op_type not in skip
    ]


def _output_tree(exported: Any) -> Any:
    from torch.utils import _pytree

    spec = exported.call_spec.out_spec
    if spec is None:
        return {"leaf": 0}
    _, tree = flatten_structure(_pytree.tree_unflatten(list(range(spec.num_leaves)), spec))
    return tree


@contextlib.contextmanager
def _quiet_torch_trace() -> Iterator[None]:
    """Mute torch.export's ``torch.__trace`` DEBUG records: empty lines in every failure report."""
    log = logging.getLogger("torch.__trace")
    disabled, log.disabled = log.disabled, True
    try:
        yield
    finally:
        log.disabled = disabled


def convert_for_coreai(
    torch_model: Any,
    example_inputs: Sequence[Any],
    precision: str,
    fp32_ops: frozenset[str] | None = None,
    *,
    directory: Path | None = None,
) -> CoreAIProgram:
    """Convert ``torch_model`` for Apple's Core AI and save it as a :class:`CoreAIProgram`.

    ``precision`` is ``"fp32"``, ``"fp16"`` (coreai-opt's ``cast_fp32_to_fp16``) or
    ``"mixed"`` (the same, with the ops named in ``fp32_ops`` kept in fp32; ``"fp16"``
    with ``fp32_ops`` means the same). ``fp32_ops`` names aten ops of the decomposed
    exported program: ``"mul"``, ``"aten.mul"`` or ``"aten.mul.Tensor"``.

    The program lives in ``directory`` when given (for the disk cache), else in a private
    temporary directory removed with the returned object. The torch model is not modified.
    Raises SettingError, CoreAIUnavailableError, or ConversionError (``summary`` one line).
    """
    _check_precision(precision, fp32_ops)
    exported = export_for_coreai(torch_model, example_inputs)
    return convert_exported(
        exported, type(torch_model).__name__, precision, fp32_ops, directory=directory
    )


def export_for_coreai(torch_model: Any, example_inputs: Sequence[Any]) -> Any:
    """``torch.export.export`` of the model: what the plugin keys its cache on, then converts.

    Raises CoreAIUnavailableError, or ConversionError naming the stage.
    """
    reason = coreai_unavailable_reason(deep=True)
    if reason is not None:
        raise CoreAIUnavailableError(reason)
    try:
        with quiet_coreai_warnings(), _quiet_torch_trace():
            import torch

            return torch.export.export(torch_model, tuple(example_inputs))
    except Exception as exc:
        raise ConversionError(
            f"Core AI conversion failed in torch.export: {_one_line(exc)}", traceback.format_exc()
        ) from exc


def convert_exported(
    exported: Any,
    model_name: str,
    precision: str,
    fp32_ops: frozenset[str] | None = None,
    *,
    directory: Path | None = None,
) -> CoreAIProgram:
    """Convert an exported program (see :func:`convert_for_coreai`); ``exported`` is not modified.

    One conversion path: :func:`convert_for_coreai` and the plugin's cache both end here.
    """
    ops = _check_precision(precision, fp32_ops)
    reason = coreai_unavailable_reason(deep=True)
    if reason is not None:
        raise CoreAIUnavailableError(reason)
    if precision == "fp16" and ops:
        precision = "mixed"
    stage = "import"
    owned = directory is None
    target = (
        Path(tempfile.mkdtemp(prefix="coreai-program-")) if directory is None else Path(directory)
    )
    try:
        with quiet_coreai_warnings(), _quiet_torch_trace():
            import coreai_torch

            # The casting pass rewrites parameters in place, and they are the model's own
            # tensors: cast a copy so neither the model nor ``exported`` changes.
            if not is_exact(precision):
                exported = copy.deepcopy(exported)
            stage = "run_decompositions"
            exported = exported.run_decompositions(coreai_torch.get_decomp_table())
            if ops and ops != ARITHMETIC_FP32_OPS:  # a pin (not 'mixed''s policy) that no
                unmatched_aten_ops(exported, ops)  # aten op answers to is an error
            if not is_exact(precision):
                from coreai_opt.casting import cast_fp32_to_fp16

                stage = "cast_fp32_to_fp16"
                exported = cast_fp32_to_fp16(
                    exported, ignored_ops=fp32_predicate(ops) if ops else None
                )
            stage = "coreai_torch.TorchConverter"
            # Its rich console prints a banner to stdout; outside a captured test phase
            # (the diagnosis's re-conversions) that would land in the terminal.
            with contextlib.redirect_stdout(io.StringIO()):
                program = coreai_torch.TorchConverter().add_exported_program(exported).to_coreai()
            stage = "save_asset"
            target.mkdir(parents=True, exist_ok=True)
            asset = program.save_asset(target / ASSET_NAME)
            stage = "read program I/O"
            in_specs, out_specs = _io_specs(asset)
            stage = "read debug info"
            table = _op_table(program, exported)
            tree = _output_tree(exported)
    except (SettingError, CoreAIUnavailableError, ConversionError):
        raise
    except Exception as exc:
        if owned:
            import shutil

            shutil.rmtree(target, ignore_errors=True)
        raise ConversionError(
            f"Core AI conversion ({precision}) failed in {stage}: {_one_line(exc)}",
            traceback.format_exc(),
        ) from exc
    meta: dict[str, Any] = {
        "model": model_name,
        "precision": precision,
        "fp32_ops": sorted(ops),
        "inputs": specs_to_json(in_specs),
        "outputs": specs_to_json(out_specs),
        "output_tree": tree,
        "ops": [op.__dict__ for op in table],
        "versions": versions(),
    }
    CoreAIProgram.write_meta(target, meta)
    return CoreAIProgram(target, {"format": 1, **meta}, owned=owned)


def ignored_ops_snippet(fp32_ops: frozenset[str]) -> str:
    """Paste-ready coreai-opt code keeping ``fp32_ops`` (aten op names) in float32."""
    listed = ", ".join(repr(name) for name in sorted(fp32_ops))
    return (
        f"FP32_OPS = {{{listed}}}\n"
        "ep = torch.export.export(model, example_inputs)"
        ".run_decompositions(coreai_torch.get_decomp_table())\n"
        "ep = coreai_opt.casting.cast_fp32_to_fp16(\n"
        "    ep,\n"
        "    ignored_ops=lambda node: getattr(node.target, \"_opname\", None) in FP32_OPS,\n"
        ")\n"
        "program = coreai_torch.TorchConverter().add_exported_program(ep).to_coreai()"
    )


def versions() -> dict[str, str]:
    """The versions a Core AI program depends on (recorded in coreai.json, part of cache keys)."""
    from importlib.metadata import PackageNotFoundError, version

    found: dict[str, str] = {}
    for dist in ("coreai-core", "coreai-torch", "coreai-opt", "torch"):
        try:
            found[dist] = version(dist)
        except PackageNotFoundError:
            found[dist] = "missing"
    return found


__all__ = [
    "ARITHMETIC_FP32_OPS",
    "convert_exported",
    "convert_for_coreai",
    "export_for_coreai",
    "fp32_predicate",
    "ignored_ops_snippet",
    "op_names",
    "versions",
]
