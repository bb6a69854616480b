"""The gate table: every gate besides rtol/atol, one row each, and the one rule that
validates a gate's value (and rtol's and atol's).

A row names the gate, the check that judges it (``assert_parity``'s verdict or
``assert_generation``), the metric it judges (``verdict.Metrics`` attribute), whether its
value is a fraction in [0, 1], the metrics table's label and position, and its
command-line help. Everything else derives from the rows: ``verdict.Gates``' fields and
``GATES``, the judging loop and the metric lookup (``verdict.py``); the options, ini
names, marker keywords and the marker's signature (``settings.py``); the help
(``plugin.py``); the metrics rows (``compare.py``); the keywords ``assert_parity`` and
``assert_generation`` accept. A new gate is one row here plus its test
(``tests/test_gate_table.py`` adds one and follows it through every place).

A leaf, like ``precisions.py``: cheap to import (settings reads it); re-exported by
``verdict.py`` as ``GATE_TABLE``.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any

#: The value that turns a preset's gate off, from any source.
OFF = "off"

#: The checks a gate belongs to (``GateRow.check``): ``assert_parity``'s verdict on each
#: output, ``assert_generation``'s on a decoder's greedy generation.
PARITY = "parity"
GENERATION = "generation"
#: The element-wise tolerance: validated by :func:`tolerance_number`, never off.
TOLERANCE_NAMES: tuple[str, ...] = ("rtol", "atol")


@dataclass(frozen=True)
class GateRow:
    """One verdict gate."""

    name: str
    #: The ``verdict.Metrics`` attribute it judges (None: part of the element rule).
    metric: str | None
    #: A fraction in [0, 1] (else any finite number >= 0).
    fraction: bool
    #: Its row in the failure's metrics table (None: no row of its own).
    label: str | None
    #: Command-line metavar and help.
    metavar: str
    help: str
    #: The value's unit, named in an argument's error (``dB``).
    unit: str = ""
    #: Position of its row in the metrics table (after max abs/rel err).
    row: int = 0
    #: The check that judges it (PARITY or GENERATION): the keywords it accepts.
    check: str = PARITY

    @property
    def flag(self) -> str:
        return f"--coreml-{self.name.replace('_', '-')}"

    @property
    def ini(self) -> str:
        return f"coreml_{self.name}"

    def allowed(self, *, unit: bool = False) -> str:
        """What the gate accepts, for messages (``unit``: with its unit, as arguments say it)."""
        if self.fraction:
            return "a number in [0, 1]"
        return f"a finite number >= 0 ({self.unit})" if unit and self.unit else "a finite number >= 0"


_PRESET = "Default: per-precision preset"

#: The table, in ``verdict.Gates`` field order.
GATE_TABLE: tuple[GateRow, ...] = (
    GateRow(
        "scale_atol", None, False, None, "S",
        f"element-wise allowance as a fraction of the reference's rms, a number, off or fp16=..,fp32=... {_PRESET}",
    ),
    GateRow(
        "min_snr", "snr", False, "SNR (dB)", "DB",
        f"fail an output whose SNR (dB) is below this; a number, off or fp16=..,fp32=... {_PRESET}",
        unit="dB", row=3,
    ),
    GateRow(
        "min_psnr", "psnr", False, "PSNR (dB)", "DB",
        f"fail an output whose PSNR (dB, peak of the reference) is below this. {_PRESET}", unit="dB", row=2,
    ),
    GateRow(
        "min_cosine", "cosine", True, "cosine", "C",
        f"fail an output whose cosine similarity to PyTorch is below this (0..1). {_PRESET}", row=1,
    ),
    GateRow(
        "min_top1", "top1", True, "top-1", "F",
        f"fail a score output whose argmax agrees on fewer than this fraction of rows. {_PRESET}", row=4,
    ),
    GateRow(
        "min_top5", "top5", True, "top-5", "F",
        "fail a score output whose torch argmax is in Core ML's top 5 on fewer than this fraction "
        f"of rows. {_PRESET}", row=5,
    ),
    GateRow(
        "min_token_match", None, True, None, "F",
        "assert_generation: fail when fewer than this fraction of the new tokens match PyTorch's "
        f"at their position; a number, off or fp16=..,fp32=... {_PRESET}", check=GENERATION,
    ),
    GateRow(
        "min_logits_cosine", None, True, None, "C",
        "assert_generation: fail a step with PyTorch's history whose logits cosine is below this (0..1). "
        f"{_PRESET}", check=GENERATION,
    ),
    GateRow(
        "min_layer_cosine", None, True, None, "C",
        "assert_generation: on a failure, name the first layer whose hidden-state cosine is below this (0..1). "
        f"{_PRESET}", check=GENERATION,
    ),
)  # fmt: skip

#: name -> row.
GATE_ROWS: dict[str, GateRow] = {row.name: row for row in GATE_TABLE}
#: Gate names besides rtol/atol, in table order.
GATES: tuple[str, ...] = tuple(GATE_ROWS)


def names(check: str) -> tuple[str, ...]:
    """The gates ``check`` (PARITY or GENERATION) judges, in table order."""
    return tuple(row.name for row in GATE_TABLE if row.check == check)


def tolerance_number(value: Any, *, text: bool) -> float | None:
    """The one rule for rtol's and atol's value: a finite number >= 0 (never off). ``text``
    as for :func:`gate_number`. None when the value breaks the rule."""
    if isinstance(value, bool):
        return None
    if text:
        try:
            number = float(value)
        except (TypeError, ValueError):
            return None
    elif isinstance(value, numbers.Real):
        number = float(value)
    else:
        return None
    return number if math.isfinite(number) and number >= 0.0 else None


def gate_number(value: Any, what: str, *, text: bool) -> float | str | None:
    """The one rule for a gate's value: ``off``, or a finite number >= 0 (<= 1 for a
    fraction gate). ``text``: the value comes from a command line, an ini file or a
    marker, so numeric strings count (``"1e-2"``); an argument must be a number.
    Returns None when the value breaks the rule; the caller's message names the source.
    """
    if isinstance(value, str) and value.strip().lower() == OFF:
        return OFF
    number = tolerance_number(value, text=text)
    row = GATE_ROWS.get(what)
    if number is None or (row is not None and row.fraction and number > 1.0):
        return None
    return number


__all__ = [
    "GATES",
    "GATE_ROWS",
    "GATE_TABLE",
    "GENERATION",
    "OFF",
    "PARITY",
    "TOLERANCE_NAMES",
    "GateRow",
    "gate_number",
    "names",
    "tolerance_number",
]
