"""Headroom on passing tests: the ops closest to 65504 and those losing most to underflow.

Turns a test's :class:`~..headroom.HeadroomLog` (accumulated over every call the
test made) into plain data with torch source lines, which the plugin puts on the
report (so it reaches the xdist controller), writes to the JSON report, prints in
the terminal summary and gates on (``--coreml-headroom=M``). Definitions are in
:mod:`..headroom` and docs/usage.md.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .. import messages
from ..headroom import FP16_MAX, HeadroomLog, OpHeadroom
from ._quiet import quiet
from .names import scope_names
from .source import describe
from .subject import ModelUnderTest, Subject

#: Ops shown per model in the terminal summary, for each of the two lists.
SHOWN = 3


def _number(x: float) -> float | str:
    return x if x == x and abs(x) != float("inf") else str(x)


@quiet
def headroom_data(model: ModelUnderTest, log: HeadroomLog) -> dict[str, Any]:
    """The JSON-safe headroom of one test: every op by peak (highest first), with sources."""
    scopes = scope_names(model.mlmodel)
    subject = Subject.from_model(model)
    lines = subject.code_lines() if scopes else {}
    ops = sorted(log.ops.values(), key=lambda op: (op.overflowed > 0, op.peak), reverse=True)
    return {
        "model": subject.root_class(),
        "precision": model.precision,
        "calls": log.calls,
        "fp16_max": FP16_MAX,
        "ops": [_op_data(op, describe(op.name, scopes, lines, subject.root_class())) for op in ops],
    }


def _op_data(op: OpHeadroom, source: str | None) -> dict[str, Any]:
    return {
        "name": op.name,
        "op_type": op.op_type,
        "dtype": op.dtype,
        "peak": op.peak,
        "overflowed": op.overflowed,
        "margin": _number(op.margin),
        "nonzero": op.nonzero,
        "underflow": op.underflow,
        "underflow_fraction": op.underflow_fraction,
        "masked": op.masked,
        "source": source,
    }


def gate(data: Mapping[str, Any], margin: float) -> str | None:
    """The gate's failure message for the fp16 op peaking highest above 65504 / margin, or None."""
    limit = FP16_MAX / margin
    over = [
        op for op in data["ops"]
        if op["dtype"] == "float16" and (op["overflowed"] or op["peak"] > limit)
    ]  # fmt: skip
    if not over:
        return None
    op = max(over, key=_gate_peak)
    return messages.HEADROOM_GATE.format(
        margin=margin,
        precision=data["precision"],
        op_type=op["op_type"],
        name=op["name"],
        peak=_gate_peak(op),
        limit=limit,
        actual=FP16_MAX / _gate_peak(op),
        calls=data["calls"],
        source=op["source"] or messages.HEADROOM_NO_SOURCE,
    )


def _gate_peak(op: Mapping[str, Any]) -> float:
    return float("inf") if op["overflowed"] else float(op["peak"])


def merge(tests: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per model and precision (same program: same op names), the ops merged over tests."""
    merged: dict[tuple[str, str, tuple[str, ...]], dict[str, Any]] = {}
    for data in tests:
        key = (data["model"], data["precision"], tuple(sorted(op["name"] for op in data["ops"])))
        into = merged.get(key)
        if into is None:
            merged[key] = {**data, "tests": 1, "ops": [dict(op) for op in data["ops"]]}
            continue
        into["tests"] += 1
        into["calls"] += data["calls"]
        by_name = {op["name"]: op for op in into["ops"]}
        for op in data["ops"]:
            mine = by_name[op["name"]]
            mine["peak"] = max(mine["peak"], op["peak"])
            mine["overflowed"] += op["overflowed"]
            mine["nonzero"] += op["nonzero"]
            mine["underflow"] += op["underflow"]
            mine["masked"] = mine.get("masked", 0) + op.get("masked", 0)
            mine["underflow_fraction"] = mine["underflow"] / mine["nonzero"] if mine["nonzero"] else 0.0
            mine["margin"] = _number(
                0.0 if mine["overflowed"] else FP16_MAX / mine["peak"] if mine["peak"] > 0 else float("inf")
            )
            mine["source"] = mine["source"] or op["source"]
    return list(merged.values())


def summary_lines(tests: Iterable[Mapping[str, Any]], shown: int = SHOWN) -> list[str]:
    """The terminal summary: per model and precision, the closest ops and the underflow."""
    out: list[str] = []
    for data in merge(tests):
        out.append(
            f"{data['model']} [{data['precision']}]: {data['calls']} input(s) over "
            f"{data['tests']} test(s); closest to 65504:"
        )
        for op in data["ops"][:shown]:
            out.append(f"  {_peak_text(op)}")
        losing = sorted(
            (op for op in data["ops"] if op["underflow"]),
            key=lambda o: o["underflow_fraction"],
            reverse=True,
        )[:shown]
        if losing:
            out.append("  most underflow (nonzero values stored as fp16 subnormals, below 2**-14):")
            for op in losing:
                out.append(
                    f"  {op['op_type']} {op['name']}: {100 * op['underflow_fraction']:.1f}% "
                    f"({op['underflow']} of {op['nonzero']}){_where(op)}"
                )
    return out


def _peak_text(op: Mapping[str, Any]) -> str:
    margin = FP16_MAX / op["peak"] if op["peak"] > 0 else float("inf")
    fits = f"margin {margin:.3g}x"
    if op["overflowed"]:
        fits = f"OVERFLOWED to inf/nan in {op['overflowed']} element(s)"
    if op.get("masked"):
        fits += f" ({op['masked']} masked element(s) not counted: an attention mask)"
    return f"{op['op_type']} {op['name']} ({op['dtype']}): peak {op['peak']:.6g}, {fits}{_where(op)}"


def _where(op: Mapping[str, Any]) -> str:
    return f" at {op['source']}" if op["source"] else ""


__all__ = ["gate", "headroom_data", "merge", "summary_lines"]
