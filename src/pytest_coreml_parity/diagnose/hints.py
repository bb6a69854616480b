"""The diagnosis' hint: say what happened, so the advice fits (one kind per failure).

The kinds, in the order they are decided:

* ``input_overflow``: an fp16 model input past 65504 is inf before any op runs;
* ``compression``: set by the compression diagnosis (:func:`compression_hint`);
* ``converter``: the fp32 conversion already fails the assertion, so FLOAT32 cannot
  fix it (never advised then);
* ``mask_nan``: the mask itself is NaN, ``inf - inf`` (coremltools #2771), at any
  precision; the advice is building the mask without -inf arithmetic;
* ``mask``: a ``-inf`` fill (``finfo.min`` stored as ``-inf`` by fp16) over fully masked
  rows gives NaN in a softmax; the advice is a finite fill first, FLOAT32 last.
  (A converter mismatch with fully masked rows stays ``converter`` and says those rows
  explain it);
* ``overflow``: an op computes a value past 65504 (or reads such a constant);
* ``underflow``: values below fp16's smallest normal flush toward 0;
* ``precision``: neither; rounding alone.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from .. import messages
from ..masks import fill_text
from ..precisions import is_exact
from .localize import FP16_MAX, Localization, OpFinding


class HintKind(enum.StrEnum):
    """What happened, as far as the diagnosis can tell."""

    INPUT_OVERFLOW = "input_overflow"
    COMPRESSION = "compression"
    CONVERTER = "converter"
    MASK = "mask"
    MASK_NAN = "mask_nan"
    OVERFLOW = "overflow"
    UNDERFLOW = "underflow"
    PRECISION = "precision"


#: Kinds that float32 (or mixed precision) can fix; only these advise it.
#: (``mask``: float32 holds the fill, so it fixes the NaN too, but the hint advises a
#: finite fill first; the fix search still runs.)
FP16_KINDS = frozenset({HintKind.MASK, HintKind.OVERFLOW, HintKind.UNDERFLOW, HintKind.PRECISION})


@dataclass(frozen=True)
class Hint:
    """One hint line for the diagnosis section."""

    kind: HintKind
    text: str


def compression_hint(detail: str) -> Hint:
    """The hook for the compression diagnosis: ``detail`` says which weights and how."""
    return Hint(HintKind.COMPRESSION, messages.HINT_COMPRESSION.format(detail=detail))


def choose_hint(localization: Localization, *, compression: str | None = None) -> Hint:
    """The hint for ``localization`` (``compression``: a compression error's detail)."""
    loc = localization
    if loc.input_overflow:
        first = loc.input_overflow[0]
        return Hint(
            HintKind.INPUT_OVERFLOW,
            messages.HINT_INPUT_OVERFLOW.format(name=first.name, value=first.given.max_abs or 0.0),
        )
    if compression is not None:
        return compression_hint(compression)
    mask = _mask(loc)
    if mask is not None:
        return mask
    if is_exact(loc.precision) or loc.fp32_passes is False:
        dep = loc.fp32_departure or loc.departure
        at = f" at {dep.brief()}" if dep is not None else ""
        text = messages.HINT_CONVERTER.format(at=at)
        if loc.masked_rows is not None:
            text += messages.HINT_MASK_CONVERTER.format(rows=loc.masked_rows.text())
        return Hint(HintKind.CONVERTER, text)
    overflow = _overflow(loc.first_non_finite)
    if overflow is not None:
        finding, what = overflow
        return Hint(
            HintKind.OVERFLOW,
            messages.HINT_OVERFLOW.format(
                what=what, where=_where(finding), advice=messages.FP32_ADVICE.format(which="overflowing")
            ),
        )
    under = loc.first_underflow
    if under is not None:
        return Hint(
            HintKind.UNDERFLOW,
            messages.HINT_UNDERFLOW.format(
                op=f"{under.op_type} {under.name}", count=under.underflowed, where=_where(under),
                advice=messages.FP32_ADVICE.format(which="underflowing"),
            ),
        )
    worst = loc.first_error or loc.first_non_finite
    dep = loc.departure
    if worst is not None:
        what = f"{worst.op_type} {worst.name} is the first op beyond rel. error {loc.tolerance:g} vs fp32{_where(worst)}"
    elif dep is not None:
        where = f" ({dep.source})" if dep.source else ""
        what = (
            f"{dep.op_type} {dep.name} is the first op departing from PyTorch at rtol={dep.rtol:g}, "
            f"atol={dep.atol:g}{where}"
        )
    else:
        what = messages.HINT_PRECISION_SPREAD.format(tolerance=loc.tolerance)
    return Hint(
        HintKind.PRECISION,
        messages.HINT_PRECISION.format(what=what, advice=messages.FP32_ADVICE.format(which="sensitive")),
    )


def _mask(loc: Localization) -> Hint | None:
    """The mask hint: the mask's own ``inf - inf``, or a -inf fill over fully masked rows."""
    rows = loc.masked_rows
    nan = loc.mask_nan
    if nan is not None:
        folded = any(given.const and given.nan for given in nan.inputs)
        what = (
            f"{nan.op_type} {nan.name} reads a mask constant that coremltools already folded to NaN"
            if folded
            else f"{nan.op_type} {nan.name} computes NaN from a -inf mask"
        )
        shown = rows.text() if rows is not None else "every masked cell"
        return Hint(
            HintKind.MASK_NAN,
            messages.HINT_MASK_INF_MINUS_INF.format(what=what, where=_where(nan), rows=shown),
        )
    if rows is None or not rows.rows or not rows.non_finite:
        return None
    if not (loc.mask_non_finite or rows.fill == float("-inf")):
        return None
    fill = "(a bool mask)" if loc.mask_fill is None else fill_text(loc.mask_fill)
    stored = fill_text(rows.fill) if rows.fill is not None else "-inf"
    bad = loc.first_non_finite
    return Hint(
        HintKind.MASK,
        messages.HINT_MASK_NAN.format(
            fill=fill, stored=stored, precision=loc.precision, rows=rows.text(),
            where=_where(bad) if bad is not None else "",
        ),
    )


def _overflow(bad: OpFinding | None) -> tuple[OpFinding, str] | None:
    """(the op, what passed 65504) when the first non-finite op is an fp16 overflow."""
    if bad is None or bad.fp32_output is None:
        return None
    if bad.fp32_output.non_finite >= bad.output.non_finite:
        return None  # fp32 is just as non-finite there: not fp16's doing
    op = f"{bad.op_type} {bad.name}"
    for given in bad.inputs:  # the cause, when a constant was already stored as inf
        if given.const and given.non_finite:
            return bad, f"{op} reads a float32 constant ({given.name}) that fp16 stores as inf"
    peak = bad.fp32_output.max_abs
    if peak is not None and peak > FP16_MAX:
        return bad, f"{op} computes {peak:.6g} (its fp32 value)"
    if peak is not None and peak > FP16_MAX / 2 and bad.output.non_finite:
        # Just under the cliff in fp32; float16's rounding of the inputs (13100 is stored
        # as 13104, and 13104 * 5 = 65520) or of the result carries it over.
        return bad, (
            f"{op} computes {peak:.6g} in fp32, just under the limit, but float16's rounding "
            "of its inputs or result carries it"
        )
    return None


def _where(finding: OpFinding) -> str:
    return f" ({finding.source})" if finding.source else ""
