"""The pytest plugin the zoo's subprocess loads (``-p tools.zoo.collect``).

It records every test phase's outcome, duration, failure text and user properties,
and the model build times, then writes them as one JSON file (``--zoo-results``) that
:mod:`.results` reads. It changes nothing about how the tests run.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

_RECORDS = pytest.StashKey[list[dict[str, Any]]]()
_STARTED = pytest.StashKey[float]()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--zoo-results", metavar="PATH", help="Write the zoo's per-test records to PATH (JSON).")


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_RECORDS] = []
    config.stash[_STARTED] = time.perf_counter()
    config.pluginmanager.register(_Recorder(config.stash[_RECORDS]), "zoo-recorder")


class _Recorder:
    def __init__(self, records: list[dict[str, Any]]) -> None:
        self.records = records

    @pytest.hookimpl(trylast=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.records.append(
            {
                "nodeid": report.nodeid,
                "when": report.when,
                "outcome": report.outcome,
                "duration": round(report.duration, 3),
                "text": report.longreprtext if report.failed or report.skipped else "",
                "properties": dict(report.user_properties),
            }
        )


def pytest_sessionstart(session: pytest.Session) -> None:
    """Import the heavy modules now, so the first test's setup times only its conversion."""
    if session.config.getoption("--zoo-results") is None:
        return
    import coremltools  # noqa: F401
    import torch  # noqa: F401

    import pytest_coreml_parity.convert  # noqa: F401


def pytest_sessionfinish(session: pytest.Session) -> None:
    path = session.config.getoption("--zoo-results")
    if path is None:
        return
    from .registry import build_seconds

    payload = {
        "records": session.config.stash[_RECORDS],
        "build_seconds": build_seconds(),
        "session_seconds": round(time.perf_counter() - session.config.stash[_STARTED], 3),
    }
    Path(path).write_text(json.dumps(payload, indent=1, default=str))
