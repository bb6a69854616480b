"""The session's JSON report (``--coreml-report=PATH``), merged on the controller.

:class:`Collector` is registered by the plugin when a session output is asked for. It
reads every test's reports in ``pytest_runtest_logreport``: on the controller under
xdist these are the workers' reports, carrying the bind information and the call
record as attributes (:mod:`.record`), so the merged report is the same with or
without ``-n``. At session end, on the controller only, it writes the JSON report, the
markdown summary (:mod:`.summary`) and the dump index (:mod:`.dump`).

The document's schema is ``schema.json`` in this package (:data:`SCHEMA_PATH`), its
``version`` is :data:`REPORT_SCHEMA_VERSION`; docs/ci.md describes every field.
"""

from __future__ import annotations

import datetime
import json
import platform
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from .._values import package_version
from ._io import write_atomic
from .record import RECORD_ATTR, json_safe

#: The JSON report's ``format`` and ``version`` (a new version for any incompatible change).
REPORT_FORMAT = "pytest-coreml-parity-report"
REPORT_SCHEMA_VERSION = 1
SCHEMA_PATH = Path(__file__).with_name("schema.json")
#: Outcomes a test can have in the report.
OUTCOMES = ("passed", "failed", "skipped", "error", "xfailed", "xpassed")


def load_schema() -> dict[str, Any]:
    """The report's JSON Schema (draft 2020-12)."""
    schema: dict[str, Any] = json.loads(SCHEMA_PATH.read_text())
    return schema


class Collector:
    """Per test id, the outcome and the coreml-parity data of its reports."""

    def __init__(
        self, settings: Any, report_attr: str, *, controller: bool, lint_attr: str | None = None,
        checks_attr: str | None = None,
    ) -> None:
        self.settings = settings
        self.report_attr = report_attr
        self.lint_attr = lint_attr  # the lint findings a call report carries (a list of dicts)
        self.checks_attr = checks_attr  # weight parity and per-profile verdicts ({"weights": [...], ...})
        self.controller = controller
        self.tests: dict[str, dict[str, Any]] = {}
        self.started = datetime.datetime.now(datetime.UTC)

    def _entry(self, nodeid: str) -> dict[str, Any]:
        entry = self.tests.get(nodeid)
        if entry is None:
            entry = self.tests[nodeid] = {
                "nodeid": nodeid, "outcome": "passed", "duration": 0.0, "model": None,
                "precision": None, "stack": None, "runner": None, "profile": None,
                "conversion": None, "calls": 0, "outputs": [], "headroom": None,
                "diagnosis": None, "message": None, "dump": None, "lint": [], "weights": None,
                "profiles": None,
            }  # fmt: skip
        return entry

    # ------------------------------------------------------------------ pytest hooks

    def pytest_runtest_logreport(self, report: Any) -> None:
        entry = self._entry(report.nodeid)
        entry["duration"] += float(getattr(report, "duration", 0.0) or 0.0)
        info = getattr(report, self.report_attr, None)
        if report.when == "setup" and info:
            entry.update(
                model=info.get("model"), precision=info.get("precision"), stack=info.get("stack"),
                runner=info.get("backend"), profile=info.get("profile"),
                conversion={
                    "event": info.get("event"),
                    "cached": info.get("event") in ("disk", "memory"),
                    "seconds": info.get("seconds"),
                    "rebuilt": info.get("rebuilt"),
                },
            )  # fmt: skip
        record = getattr(report, RECORD_ATTR, None)
        if record:
            entry.update(record)
        if report.when == "call":
            self._checks(entry, report)
        outcome = _outcome(report)
        if outcome is not None:
            entry["outcome"] = outcome
            if outcome in ("failed", "error"):
                entry["message"] = _message(report)

    def _checks(self, entry: dict[str, Any], report: Any) -> None:
        """The lint findings, weight parity and per-profile verdicts the call report carries."""
        lint = getattr(report, self.lint_attr, None) if self.lint_attr else None
        if lint:
            entry["lint"] = json_safe(lint)
        checks = getattr(report, self.checks_attr, None) if self.checks_attr else None
        if checks:
            entry["weights"] = json_safe(checks.get("weights")) or None
            entry["profiles"] = json_safe(checks.get("profiles")) or None

    def pytest_sessionfinish(self, session: Any) -> None:
        if not self.controller:  # an xdist worker: the controller writes
            return
        settings = self.settings
        document = self.document()
        if settings.report is not None:
            write_atomic(Path(settings.report), json.dumps(document, indent=1, allow_nan=False) + "\n")
        if settings.summary is not None:
            from .summary import markdown

            write_atomic(Path(settings.summary), markdown(document))
        if settings.dump_dir is not None:
            from .dump import write_index

            write_index(Path(settings.dump_dir), document)

    # ------------------------------------------------------------------ the document

    def document(self) -> dict[str, Any]:
        tests = [self.tests[k] for k in sorted(self.tests)]
        counts = Counter(t["outcome"] for t in tests)
        s = self.settings
        document: dict[str, Any] = json_safe({
            "format": REPORT_FORMAT,
            "version": REPORT_SCHEMA_VERSION,
            "created": self.started.isoformat(timespec="seconds"),
            "environment": {
                "python": platform.python_version(),
                "platform": sys.platform,
                "machine": platform.machine(),
                **{dist: package_version(dist, missing="not installed") for dist in (
                    "pytest-coreml-parity", "coremltools", "torch", "numpy", "coreai-core")},
            },
            "settings": {
                "precisions": list(s.precisions), "targets": list(s.targets),
                "backend": s.backend, "emulator_profile": s.emulator_profile,
                "compute_units": s.compute_units, "deployment_target": s.target,
            },
            "totals": {"tests": len(tests), **{o: counts.get(o, 0) for o in OUTCOMES}},
            "tests": tests,
        })  # fmt: skip
        return document


def _outcome(report: Any) -> str | None:
    """The test's outcome from one phase's report (None: this phase does not decide it)."""
    xfail = hasattr(report, "wasxfail")
    if report.when == "call":
        if xfail:
            return "xfailed" if report.skipped else "xpassed"
        return str(report.outcome)
    if report.failed:
        return "error"
    if report.when == "setup" and report.skipped:
        return "xfailed" if xfail else "skipped"
    return None


def _message(report: Any) -> str | None:
    crash = getattr(report.longrepr, "reprcrash", None)
    text = crash.message if crash is not None else str(report.longrepr)
    lines = text.splitlines()
    return lines[0][:500] if lines else None


__all__ = ["REPORT_FORMAT", "REPORT_SCHEMA_VERSION", "SCHEMA_PATH", "Collector", "load_schema"]
