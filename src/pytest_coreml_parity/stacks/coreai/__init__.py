"""The Core AI stack: export with torch.export, convert with coreai-torch (coreai-opt's
casting for fp16 and mixed), run on Apple's interpreter in an isolated worker
(docs/coreai.md), diagnose with the interpreter's per-op values.

Cheap to import: everything heavy is imported inside the methods.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ... import messages
from .layout import PROGRAM_LAYOUT

if TYPE_CHECKING:
    from ...backends import Backend
    from ...cache import Entry, EntryLayout
    from ...convert import ConversionOptions
    from ...model import CoreMLModel, Runtime
    from ...verdict import Gates


def coreai_precision(options: ConversionOptions) -> tuple[str, frozenset[str] | None]:
    """(precision, fp32_ops) to convert with for Core AI.

    ``mixed`` without ``fp32_ops`` keeps elementwise arithmetic in fp32
    (``ARITHMETIC_FP32_OPS``); ``fp16`` with ``fp32_ops`` converts as mixed
    (:func:`~pytest_coreml_parity.coreai.convert.convert_exported` records it so).
    """
    from ...precisions import PRECISIONS, is_exact

    row = PRECISIONS[options.precision]
    if is_exact(row.name):
        return row.name, None
    if row.mixed and not options.fp32_ops:
        from ...coreai.convert import ARITHMETIC_FP32_OPS

        return row.base, ARITHMETIC_FP32_OPS
    return options.precision, options.fp32_ops or None


class CoreAIStack:
    name = "coreai"
    title = "Core AI"
    layout: EntryLayout = PROGRAM_LAYOUT
    unavailable = messages.COREAI_UNAVAILABLE
    parity_header = messages.COREAI_PARITY_HEADER
    nonfinite = messages.COREAI_NONFINITE
    wraps_decoders = False
    #: Core ML's conversion recipe (ct.convert) and runner: Core AI converts through
    #: coreai-torch and runs on its interpreter.
    ignores: frozenset[str] = frozenset({
        "target", "compute_units", "input_dtypes", "export", "optimization", "convert_kwargs",
        "function", "package", "precision", "package_inputs", "backend", "emulator_profile",
        "headroom", "headroom_action", "headroom_report",
        "shims",  # coremltools converter shims
        "weight_report",  # read from the Core ML program's weights
        "profile_verdicts",  # the emulator's profiles
        "coreml_convert", "coreml_convert_kwargs", "torch_preprocess",  # fixtures
    })  # fmt: skip

    def skip_reason(self, precision: str) -> str | None:
        from ...precisions import stack_precisions, supports

        if supports(precision, self.name):
            return None
        return messages.COREAI_PRECISION_UNSUPPORTED.format(
            precision=precision, known=", ".join(stack_precisions(self.name))
        )

    def converted_options(self, options: ConversionOptions) -> ConversionOptions:
        """``mixed``: an fp16 program with some ops in fp32, judged as fp16 (like Core ML's fp32_ops)."""
        from ...precisions import PRECISIONS

        row = PRECISIONS.get(options.precision)
        if row is None or not row.mixed:
            return options
        precision, fp32 = coreai_precision(options)
        return dataclasses.replace(options, precision=precision, fp32_ops=fp32)

    def resolve_runner(self, choice: str) -> tuple[Backend | None, str | None]:
        """Core AI's runner (the interpreter, or the OS runtime on macOS); ``choice`` is Core ML's."""
        from ...backends import resolve_coreai_backend

        return resolve_coreai_backend()

    def bind(
        self,
        model: CoreMLModel,
        torch_model: Any,
        example_inputs: tuple[Any, ...],
        options: ConversionOptions,
        *,
        convert: Any,
        convert_kwargs: Mapping[str, Any] | None,
    ) -> str:
        assert model.runtime is not None
        entry, event = obtain(model.runtime, self, torch_model, example_inputs, options)
        return model.load_program_entry(entry, event, options)

    def describe_conversion(self, model: CoreMLModel) -> str:
        return messages.COREAI_CONVERTED.format(
            precision=model.precision,
            fp32_ops=", ".join(sorted(model.options.fp32_ops or ())) or "none",
        )

    def diagnose(
        self,
        model: Any,
        inputs: Sequence[Any],
        *,
        rtol: float | None,
        atol: float | None,
        gates: Gates | None,
    ) -> Any:
        from ...diagnose.coreai import diagnose_coreai
        from ...diagnose.subject import as_arrays

        return diagnose_coreai(model, as_arrays(inputs), rtol=rtol, atol=atol, gates=gates)

    def write_report(self, diagnosis: Any, report_dir: Path, node_id: str | None) -> list[Path]:
        from ...report import write_data  # Core AI: no per-op profile, so no plot

        return [write_data(report_dir, diagnosis.to_dict(), node_id=node_id)]

    def header(self) -> str | None:
        """``coreai: coreai-core 1.0.0b3, ..., backend coreai-interpreter`` (or UNAVAILABLE)."""
        from ..._values import package_version
        from ...backends import coreai_backend_name
        from ...coreai.availability import coreai_unavailable_reason  # cheap: no torch

        reason = coreai_unavailable_reason()
        versions = ", ".join(
            f"{dist} {package_version(dist, missing='not installed')}"
            for dist in ("coreai-core", "coreai-torch", "coreai-opt")
        )
        if reason is not None:
            return f"coreai: {versions}; UNAVAILABLE ({reason}): coreai tests skip"
        return f"coreai: {versions}, backend {coreai_backend_name()}"


def obtain(
    runtime: Runtime,
    stack: CoreAIStack,
    torch_model: Any,
    example_inputs: Sequence[Any],
    options: ConversionOptions,
) -> tuple[Entry, str]:
    """The Core AI program: export once, key it, convert on a miss."""
    from ...cache import Entry
    from ...convert import ConversionError, default_input_names
    from ...coreai.convert import convert_exported, export_for_coreai
    from ...errors import NotBoundError
    from .key import program_key

    backend, reason = runtime.runner(stack)
    if backend is None:
        raise NotBoundError(str(reason))
    runtime.last_rebuilt = None
    precision, fp32_ops = coreai_precision(options)
    name = type(torch_model).__name__
    try:
        exported = export_for_coreai(torch_model.eval(), example_inputs)
    except ConversionError as exc:
        runtime.cache.stats.failed += 1
        return Entry(error=exc), "failed"
    runtime.last_captured = exported  # the lint reads the exported program
    names = options.input_names or default_input_names(torch_model, len(example_inputs))
    key = program_key(exported, torch_model, example_inputs, names, options, fp32_ops)

    def convert() -> tuple[Any, Any]:
        program = convert_exported(exported, name, precision, fp32_ops)
        return program, program.output_tree

    entry, event = runtime.cache.get(
        key,
        convert=convert,
        load=lambda path: backend.load(path, options.compute_units),
        layout=stack.layout,
    )
    if event != "memory":
        runtime.last_rebuilt = entry.rebuilt
    return entry, event


__all__ = ["CoreAIStack", "coreai_precision", "obtain"]
