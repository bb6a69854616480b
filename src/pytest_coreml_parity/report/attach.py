"""What the plugin's report hook adds for the CI outputs, after a test's call phase.

One call per test (from ``pytest_runtest_makereport``): write the golden dump if asked,
build the test's record (:mod:`.record`), hang it on the report for the xdist
controller, and add the JUnit properties to the item (pytest copies them onto the
teardown report, which ``--junitxml`` reads).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .record import RECORD_ATTR, call_record, junit_properties


def attach_record(
    report: Any,
    item: Any,
    model: Any,
    *,
    settings: Any,
    setup: Mapping[str, Any] | None,
    headroom: Mapping[str, Any] | None,
    diagnosis: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """Dump (``--coreml-dump``), record and JUnit properties of one test; returns the record."""
    dump = None
    if settings.dump_dir is not None and model.verdicts is not None and model.verdicts.kept:
        from .dump import write_dump
        from .outputs import DEFAULT_DUMP_MAX_MB

        limit = settings.dump_max_mb if settings.dump_max_mb is not None else DEFAULT_DUMP_MAX_MB
        try:
            dump = write_dump(Path(settings.dump_dir), model, item.nodeid, setup or {}, limit)
        except Exception as error:  # never hide the test's outcome; say why in the record
            dump = {"path": None, "bytes": 0, "package": "none", "note": f"dump failed: {type(error).__name__}: {error}"}
    record = call_record(model, headroom=headroom, diagnosis=diagnosis, dump=dump)
    setattr(report, RECORD_ATTR, record)  # rides to the xdist controller with the report
    properties = junit_properties(setup, record)
    report.user_properties.extend(properties)  # this report's copy
    item.user_properties.extend(properties)  # the teardown report's, which --junitxml reads
    model.verdicts = None  # the kept arrays are not needed past this test
    return record


__all__ = ["attach_record"]
