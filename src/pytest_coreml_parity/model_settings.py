"""``ModelSettings``: one ``coreml_model``'s settings, the resolved :class:`~.settings.Settings`
record itself plus the model's coordinates (stack, precision; with ``package=``, the
package's resolved path).

The plugin resolves one ``Settings`` per test (marker, command line, ini, default) and
hands it to every model of the test's stack and precision axes unchanged: nothing is
copied field by field. What a model reads (the conversion options, the configured
tolerance and gates, the headroom gate...) derives here, in one place.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .convert import ConversionOptions
from .precisions import FP32, PRECISIONS, is_exact
from .settings import Gate, Settings, Tolerance
from .stacks import DEFAULT_STACKS


def conversion_options(settings: Settings, precision: str) -> ConversionOptions:
    """The :class:`ConversionOptions` ``settings`` give a model at ``precision``: the user's
    OptimizationConfig only for its own precision (``custom``), ``fp32_ops`` only where a
    program has fp16 ops to keep in fp32."""
    row = PRECISIONS.get(precision)
    return ConversionOptions(
        precision=precision,
        target=settings.target,
        compute_units=settings.compute_units,
        input_dtypes=settings.input_dtypes,
        use_export=settings.export,
        optimization=settings.optimization if row is not None and row.user_config else None,
        fp32_ops=frozenset(settings.fp32_ops) if settings.fp32_ops and not is_exact(precision) else None,
        convert_kwargs=settings.convert_kwargs,
        shims=settings.shims,
    )


@dataclass(frozen=True)
class ModelSettings:
    """The test's resolved settings record and this model's place on its axes."""

    settings: Settings = dataclasses.field(default_factory=Settings)
    #: The stack's name (``stacks.STACKS``): ``coreml`` (Core ML) or ``coreai`` (Core AI).
    stack: str = DEFAULT_STACKS[0]
    #: The precision axis' value (the options may say otherwise: see :attr:`options`).
    precision: str = FP32
    #: ``package=``: the built .mlpackage to test instead of converting (package.py).
    package: Path | None = None
    #: The conversion options when they are not the ones the record derives (the stack's
    #: :meth:`~.stacks.Stack.converted_options`, ``CoreMLModel.with_options``).
    converted: ConversionOptions | None = None

    @functools.cached_property
    def options(self) -> ConversionOptions:
        """What, besides the model and inputs, determines the converted program."""
        return self.converted or conversion_options(self.settings, self.precision)

    def with_options(self, options: ConversionOptions) -> ModelSettings:
        return dataclasses.replace(self, converted=options)

    # Read from the record, never copied.

    @property
    def rtol(self) -> Tolerance:
        return self.settings.rtol

    @property
    def atol(self) -> Tolerance:
        return self.settings.atol

    @property
    def gates(self) -> Mapping[str, Gate]:
        """Configured gates by name (gates.GATE_TABLE); a gate not here is the preset's."""
        return self.settings.gates

    @property
    def search_fix(self) -> bool:
        return self.settings.search_fix

    @property
    def report_dir(self) -> Path | None:
        return self.settings.report_dir

    @property
    def guide(self) -> bool:
        """Guide hypothesis with ``target()`` inside ``@given`` (emulator backend only)."""
        return self.settings.guide

    @property
    def headroom(self) -> float | None:
        """Headroom gate: fail (``headroom_action``) when an fp16 op peaks above 65504 / headroom."""
        return self.settings.headroom

    @property
    def headroom_action(self) -> str:
        return self.settings.headroom_action

    @property
    def emulator_profile(self) -> str:
        """The emulator backend's execution profile (settings.EMULATOR_PROFILES)."""
        return self.settings.emulator_profile

    @property
    def package_precision(self) -> str | None:
        """``precision=`` with ``package=``: the verdict's precision (None: read from the program)."""
        return self.settings.precision

    @property
    def package_inputs(self) -> dict[str, str] | None:
        """``package_inputs=`` with ``package=``: package input name -> forward argument."""
        return self.settings.package_inputs

    @property
    def function(self) -> str | None:
        """The function of a multi-function package to run (None: the package's default)."""
        return self.settings.function

    @property
    def disk_cache(self) -> bool:
        """False (marker cache=False): memory cache only, never the disk cache."""
        return self.settings.cache


__all__ = ["ModelSettings", "conversion_options"]
