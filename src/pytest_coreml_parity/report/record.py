"""One test's record for the CI outputs, and its JUnit properties.

Built on the worker that ran the test (it has the model, the verdict log, the headroom
and the diagnosis) and attached to the call-phase report as :data:`RECORD_ATTR`, a
plain JSON-able dict, so it rides to the xdist controller with the report the way the
bind information (``plugin.REPORT_ATTR``) does. The controller's collector
(:mod:`.session`) merges the setup and call records per test id.

Diagnosis objects are read by duck typing (``localization``, ``hint``, ``fix``; Core AI's
``first_nonfinite``): this module imports nothing from ``diagnose/``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

#: The attribute of a call-phase ``TestReport`` holding :func:`call_record`'s dict.
RECORD_ATTR = "coreml_parity_record"
#: JUnit ``<property>`` names are this prefix plus a key of :func:`junit_properties`.
PROPERTY_PREFIX = "coreml."
#: Ops listed per test in the record's headroom (the closest to 65504 first).
HEADROOM_OPS = 5


def number(value: Any) -> Any:
    """A JSON-safe number: non-finite floats as the strings ``inf``, ``-inf``, ``nan``."""
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return value


def json_safe(value: Any) -> Any:
    """``value`` with every non-finite float replaced (see :func:`number`), tuples as lists."""
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):  # numpy scalars
        value = value.item()
    return number(value)


def diagnosis_summary(diagnosis: Any) -> dict[str, Any]:
    """The failing op, its torch source line, what happened and the fix, as data."""
    out: dict[str, Any] = {"op_type": None, "op": None, "source": None, "hint_kind": None,
                           "hint": None, "fix": None, "fix_found": None, "fp32_ops": None}  # fmt: skip
    localization = getattr(diagnosis, "localization", None)
    if localization is not None:  # Core ML: the localization's first finding
        finding = (
            localization.first_non_finite or localization.first_error
            or getattr(localization, "first_underflow", None)
        )  # fmt: skip
        if finding is not None:
            out.update(op_type=finding.op_type, op=finding.name, source=finding.source)
        hint = getattr(diagnosis, "hint", None)
        if hint is not None:
            out.update(hint_kind=str(hint.kind), hint=hint.text)
        fix = getattr(diagnosis, "fix", None)
        if fix is not None:
            out.update(fix_found=fix.found, fp32_ops=list(fix.fp32_ops) or None)
            out["fix"] = f"{fix.pin()}\n{fix.snippet}" if fix.found else fix.message
        elif hint is not None:  # the hint says what to change (FLOAT32, mixed precision...)
            out["fix"] = advice(hint.text, out["source"])
        return out
    op = getattr(diagnosis, "first_nonfinite", None)  # Core AI
    if op is not None:
        code = op.code
        source = op.source_line if code is None else f"{op.source_line}: {code}"
        out.update(op_type=op.op_type, op=op.name, source=source, hint_kind="overflow")
    fix = getattr(diagnosis, "fix", None)
    if fix is not None:
        out.update(fix_found=fix.found, fp32_ops=sorted(fix.fp32_ops) if fix.fp32_ops else None)
        out["fix"] = fix.snippet if fix.found else fix.why
    return out


def advice(hint: str, source: str | None) -> str:
    """A hint as the record's fix: without its ``hint:`` label and without the torch line it
    repeats (the record's ``source``), so a summary cell keeps the advice at its end."""
    text = hint.removeprefix("hint: ")
    if source:
        text = text.replace(f" ({source})", "")
    return text


def headroom_summary(data: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The closest fp16 ops to 65504 of one test (``diagnose/headroom.py``'s data)."""
    if not data:
        return None
    ops = [op for op in data.get("ops", ()) if op.get("dtype") == "float16"]
    top = ops[:HEADROOM_OPS]
    keep = ("name", "op_type", "peak", "margin", "overflowed", "source")
    worst = top[0] if top else None
    summary: dict[str, Any] = json_safe({
        "calls": data.get("calls"),
        "fp16_ops": len(ops),
        "min_margin": 0.0 if worst is not None and worst["overflowed"] else (
            worst["margin"] if worst is not None else None),
        "ops": [{k: op.get(k) for k in keep} for op in top],
    })  # fmt: skip
    return summary


def call_record(
    model: Any,
    *,
    headroom: Mapping[str, Any] | None,
    diagnosis: Mapping[str, Any] | None,
    dump: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """What the call phase adds to a test's record (JSON-able)."""
    log = getattr(model, "verdicts", None)
    record: dict[str, Any] = json_safe({
        "calls": log.calls if log is not None else 0,
        "outputs": log.summary() if log is not None else [],
        "headroom": headroom_summary(headroom),
        "diagnosis": dict(diagnosis) if diagnosis is not None else None,
        "dump": dict(dump) if dump is not None else None,
    })  # fmt: skip
    return record


def worst_output(record: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The output that decides the test: a failed one first, else the largest error ratio."""
    outputs = record.get("outputs") or []

    def key(row: Mapping[str, Any]) -> tuple[bool, float]:
        ratio = row.get("error_ratio")
        ratio = math.inf if isinstance(ratio, str) else float(ratio or 0.0)
        return row.get("verdict") == "fail", ratio

    return max(outputs, key=key) if outputs else None


def _fmt(value: Any) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def junit_properties(setup: Mapping[str, Any] | None, record: Mapping[str, Any]) -> list[tuple[str, str]]:
    """JUnit ``<properties>`` of a test: precision, stack, runner, profile, conversion,
    verdict, SNR, cosine, max errors and the headroom margin (the deciding output's)."""
    props: dict[str, Any] = {}
    if setup:
        for key in ("precision", "stack", "backend", "profile", "event"):
            if setup.get(key) is not None:
                name = {"backend": "runner", "event": "conversion"}.get(key, key)
                props[name] = setup[key]
        if setup.get("seconds") is not None:
            props["conversion_s"] = round(float(setup["seconds"]), 4)
    row = worst_output(record)
    if row is not None:
        metrics = row["metrics"]
        props["verdict"] = row["verdict"]
        if row["failed_gates"]:
            props["failed_gates"] = ",".join(row["failed_gates"])
        props["output"] = row["output"]
        for key in ("snr", "psnr", "cosine", "max_abs", "max_rel"):
            props[key] = metrics.get(key)
    headroom = record.get("headroom")
    if headroom and headroom.get("min_margin") is not None:
        props["headroom"] = headroom["min_margin"]
    return [(PROPERTY_PREFIX + k, _fmt(v)) for k, v in props.items() if v is not None]


__all__ = [
    "PROPERTY_PREFIX", "RECORD_ATTR", "advice", "call_record", "diagnosis_summary", "headroom_summary",
    "json_safe", "junit_properties", "worst_output",
]
