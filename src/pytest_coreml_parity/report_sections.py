"""What the plugin adds to a test's report: the diagnosis section, headroom data and files.

Kept out of ``plugin.py`` so the plugin stays options, fixtures and hooks. The hooks
import this module lazily; it imports diagnosis, compare and the report writer only
inside the functions, and only when there is something to report.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import messages

if TYPE_CHECKING:
    from .model import CoreMLModel


def headroom_outcome(model: CoreMLModel) -> tuple[dict[str, Any] | None, str | None]:
    """(the test's headroom data, the gate's failure message) from the calls it made.

    Consumes the model's headroom log, so the next test starts empty.
    """
    log = model.headroom
    model.headroom = None
    if log is None or not log.calls:
        return None, None
    from .diagnose.headroom import gate, headroom_data

    margin = model.settings.headroom
    try:
        data = headroom_data(model, log)
    except Exception as error:  # never hide the test's own outcome; never gate silently
        text = messages.DIAGNOSIS_UNAVAILABLE.format(error=f"{type(error).__name__}: {error}")
        return None, (f"headroom {text}" if margin is not None else None)
    return data, (gate(data, margin) if margin is not None else None)


def write_headroom_file(model: CoreMLModel, headroom: dict[str, Any], node_id: str) -> None:
    """The test's headroom JSON in ``--coreml-report-dir`` DIR, when one is set."""
    if model.report_dir is not None:
        from .report import write_headroom

        write_headroom(model.report_dir, headroom, node_id=node_id)


def diagnosis_section(exc: BaseException, node_id: str) -> str | None:
    """The diagnosis of a :class:`~.compare.ParityFailure` (and its report files), or None."""
    found = diagnose_exception(exc, node_id)
    return found[0] if found is not None else None


def attach_diagnosis(report: Any, text: str) -> None:
    """Put the diagnosis into the failure's own text (``report.longrepr``), so every
    reporter carries it: the terminal, ``--junitxml`` (its ``<failure>`` text is
    ``str(longrepr)``), ``-rA`` and xdist (longrepr sections are serialized). A failure
    without an exception repr (``pytrace=False``: a plain string) gets a report section."""
    add_section(report, messages.DIAGNOSIS_SECTION, text)


def add_section(report: Any, title: str, text: str) -> None:
    """A section of the failure's own text when the test failed with an exception repr (so
    ``--junitxml`` and xdist carry it, like the diagnosis), else a report section (shown by
    the terminal for a passing test with ``-rP`` / ``-rA``)."""
    longrepr = report.longrepr
    if report.failed and hasattr(longrepr, "addsection"):
        longrepr.addsection(title, text)
    else:
        report.sections.append((title, text))


def diagnose_exception(exc: BaseException, node_id: str) -> tuple[str, dict[str, Any] | None] | None:
    """(the diagnosis text, its summary for the CI outputs) of a ParityFailure, or None.

    Imports diagnosis only when a ParityFailure is present (no compare module loaded
    means none was raised). Never raises: the real failure must stay visible.
    """
    if f"{__package__}.compare" not in sys.modules:
        return None
    from .compare import ParityFailure

    if not isinstance(exc, ParityFailure) or exc.model is None or exc.inputs is None:
        return None
    model = exc.model
    if model.torch_state_model is not None:  # one step of a sequence replays wrong
        return messages.STATEFUL_NO_DIAGNOSIS.format(model=model), None
    try:
        try:
            from .diagnose import diagnose_failure
        except ModuleNotFoundError as missing:  # a build without the diagnose package
            if missing.name == f"{__package__}.diagnose":
                return None
            raise
        gates = exc.judgement.gates if exc.judgement is not None else None
        diagnosis = diagnose_failure(model, exc.inputs, rtol=exc.rtol, atol=exc.atol, gates=gates)
        if diagnosis is None:
            return None
        written: list[Path] = []
        if model.report_dir is not None and not diagnosis.healthy:  # the stack's report files
            written = model.stack.write_report(diagnosis, model.report_dir, node_id)
        from .report.record import diagnosis_summary

        return diagnosis.text(written), diagnosis_summary(diagnosis)
    except Exception as error:
        return messages.DIAGNOSIS_UNAVAILABLE.format(error=f"{type(error).__name__}: {error}"), None


__all__ = [
    "attach_diagnosis", "diagnose_exception", "diagnosis_section", "headroom_outcome",
    "write_headroom_file",
]
