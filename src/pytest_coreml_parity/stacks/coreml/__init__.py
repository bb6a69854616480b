"""The Core ML stack: capture with torch.jit.trace / torch.export, convert with
coremltools (compressing with ct.optimize.coreml), run on the emulator or the macOS
runtime, diagnose per op against fp32 and torch.

Cheap to import: everything heavy is imported inside the methods.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ... import messages
from .layout import PACKAGE_LAYOUT

if TYPE_CHECKING:
    from ...backends import Backend
    from ...cache import Entry, EntryLayout
    from ...convert import ConversionOptions
    from ...model import CoreMLModel, Runtime
    from ...verdict import Gates


class CoreMLStack:
    name = "coreml"
    title = "Core ML"
    layout: EntryLayout = PACKAGE_LAYOUT
    unavailable = messages.BACKEND_UNAVAILABLE
    parity_header = messages.PARITY_HEADER
    nonfinite = messages.COREML_NONFINITE
    wraps_decoders = True
    #: Every setting applies (the options are Core ML's conversion recipe and runner).
    ignores: frozenset[str] = frozenset()

    def skip_reason(self, precision: str) -> str | None:
        from ...precisions import supports

        if supports(precision, self.name):
            return None
        return messages.COREML_PRECISION_UNSUPPORTED.format(precision=precision)

    def converted_options(self, options: ConversionOptions) -> ConversionOptions:
        return options

    def resolve_runner(self, choice: str) -> tuple[Backend | None, str | None]:
        from ...backends import resolve_backend

        return resolve_backend(choice)

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
        if convert is not None:  # re-keyed at every bind: the fixture may have changed
            options = dataclasses.replace(options, user_convert=convert, user_convert_key=None)
        if convert_kwargs and model.settings.options.convert_kwargs is None:
            options = dataclasses.replace(
                options, convert_kwargs=dict(convert_kwargs), convert_kwargs_key=None
            )
        assert model.runtime is not None
        entry, event = obtain(
            model.runtime, self, torch_model, example_inputs, options, disk=model.settings.disk_cache
        )
        return model.load_package_entry(entry, event, options)

    def describe_conversion(self, model: CoreMLModel) -> str:
        return model.options.describe()

    def diagnose(
        self,
        model: Any,
        inputs: Sequence[Any],
        *,
        rtol: float | None,
        atol: float | None,
        gates: Gates | None,
    ) -> Any:
        from ...diagnose.section import diagnose_coreml

        return diagnose_coreml(model, inputs, rtol=rtol, atol=atol, gates=gates)

    def write_report(self, diagnosis: Any, report_dir: Path, node_id: str | None) -> list[Path]:
        import warnings

        from ...report import write_report

        with warnings.catch_warnings():  # plotting must not fail a -W error suite
            warnings.simplefilter("ignore")
            return write_report(report_dir, diagnosis.localization, diagnosis.fix, node_id=node_id)

    def header(self) -> str | None:
        return None


def obtain(
    runtime: Runtime,
    stack: CoreMLStack,
    torch_model: Any,
    example_inputs: Sequence[Any],
    options: ConversionOptions,
    *,
    disk: bool = True,
) -> tuple[Entry, str]:
    """The converted package: capture once, key the capture, convert that same capture on a miss."""
    from ...cache import Entry
    from ...convert import ConversionError, capture, conversion_key, convert_captured
    from ...errors import NotBoundError

    backend, reason = runtime.runner(stack)
    if backend is None:
        raise NotBoundError(str(reason))
    runtime.last_rebuilt = None
    runtime.last_states = ()
    runtime.last_captured = None
    try:
        captured = capture(torch_model, example_inputs, options)
    except ConversionError as exc:
        runtime.cache.stats.failed += 1
        return Entry(error=exc), "failed"
    runtime.last_states = captured.states
    runtime.last_captured = captured.source  # the lint reads the torch graph
    cache = runtime.cache if disk else runtime.memory_cache()
    entry, event = cache.get(
        conversion_key(captured, options),
        convert=lambda: (convert_captured(captured, options), captured.structure),
        load=lambda path: backend.load(path, options.compute_units),
        layout=stack.layout,
    )
    if event != "memory":
        runtime.last_rebuilt = entry.rebuilt
    return entry, event


__all__ = ["CoreMLStack", "obtain"]
