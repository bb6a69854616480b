"""Reports: a failure's diagnosis files, and what CI reads from a session.

* :mod:`.files`: one failure's diagnosis JSON and per-op plot (``--coreml-report-dir``).
* :mod:`.record`: one test's record (model, stack, runner, conversion, verdicts, headroom,
  diagnosis), its JUnit properties, and how it rides to the xdist controller.
* :mod:`.session`: the session's JSON report (``--coreml-report``; ``schema.json``).
* :mod:`.summary`: the markdown summary for CI pages (``--coreml-summary``).
* :mod:`.dump`: golden dumps (``--coreml-dump``), read back by :mod:`.replay`.
* :mod:`.replay`: ``python -m pytest_coreml_parity.replay DIR``, and the fidelity report.

Cheap to import: numpy, torch and coremltools load inside the functions that need them.
"""

from __future__ import annotations

from .files import (
    REPORT_VERSION,
    plot_profile,
    report_data,
    report_stem,
    write_data,
    write_headroom,
    write_report,
)

__all__ = [
    "REPORT_VERSION",
    "plot_profile",
    "report_data",
    "report_stem",
    "write_data",
    "write_headroom",
    "write_report",
]
