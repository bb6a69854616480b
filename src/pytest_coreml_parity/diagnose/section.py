"""The text appended to a failing assertion, and the report files written with it."""

from __future__ import annotations

from typing import Any

from ._quiet import quiet
from .subject import PluginSubject, as_arrays

HEADER = "---- coreml-parity diagnosis ----"


def failure_section(model: Any, inputs: tuple[Any, ...]) -> str | None:
    """Diagnosis text for a failing assertion on ``model`` (a CoreMLModel) and ``inputs``.

    Never raises: a diagnosis that cannot run says so in one line. Returns None
    when there is nothing to say (the model is fp32, or every op matches fp32).
    """
    try:
        return _section(model, as_arrays(inputs))
    except Exception as exc:  # the hook must never mask the real assertion
        return f"{HEADER}\ndiagnosis unavailable: {type(exc).__name__}: {exc}"


@quiet
def _section(model: Any, inputs: tuple[Any, ...]) -> str | None:
    from .fix import search_fix
    from .workflow import localize_subject

    precision = str(getattr(model, "precision", ""))
    if precision == "fp32":
        return None
    subject = PluginSubject(model)
    localization = localize_subject(subject, inputs, precision)
    fix = None
    if getattr(model, "search_fix", False) and not localization.healthy:
        sets = [("failing inputs", inputs), ("example inputs", subject.example_inputs)]
        from .tolerance import tolerance

        rtol, atol = tolerance("fp16", model)
        fix = search_fix(subject, sets, rtol=rtol, atol=atol)
    report_note = ""
    report_dir = getattr(model, "report_dir", None)
    if report_dir is not None and not localization.healthy:
        from ..report import write_report

        written = write_report(report_dir, localization, fix, node_id=getattr(model, "node_id", None))
        report_note = "report: " + ", ".join(str(p) for p in written)
    if localization.healthy and fix is None:
        return None
    parts = [HEADER, localization.text()]
    if fix is not None:
        parts.append(fix.text())
    elif not localization.healthy:
        parts.append("hint: run with --coreml-search-fix to search for ops to keep in fp32")
    if report_note:
        parts.append(report_note)
    return "\n".join(parts)
