"""One model's result, read from the collector's records (:mod:`.collect`).

A precision's verdict comes from ``test_parity[<precision>]``: ``pass``, ``fail``
(with the stage that failed: capture, convert, run or parity) or ``error``. Its
timings come from ``test_speed[<precision>]``. The cause of a failure is the first
meaningful line of the failure text; the JSON keeps the first lines in full too.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

#: How a failure text starts, and the stage it names (the plugin's own messages:
#: convert.py's capture and conversion errors, messages.PARITY_HEADER and friends).
STAGES: tuple[tuple[str, str], ...] = (
    (r"^(torch\.jit\.trace|torch\.export) could not capture", "capture"),
    (r"^coremltools could not convert", "convert"),
    (r"^Core ML output .* does not match PyTorch", "parity"),
    (r"^Core ML produced nan/inf", "parity"),
    (r"^PyTorch's own output", "parity"),
)
#: Characters kept of a cause line (the table's column) and lines kept as detail (the JSON).
CAUSE_CHARS = 240
DETAIL_LINES = 30


@dataclass
class PrecisionResult:
    verdict: str = "missing"
    stage: str = ""
    cause: str = ""
    detail: str = ""
    #: Setup of test_parity: capture, conversion, emulator plan and first run (build excluded).
    convert_s: float | None = None
    emulator_ms: float | None = None
    torch_ms: float | None = None
    ratio: float | None = None


@dataclass
class ModelResult:
    name: str
    library: str
    family: str
    notes: str
    build_s: float | None = None
    wall_s: float | None = None
    harness_error: str = ""
    precisions: dict[str, PrecisionResult] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ModelResult:
        precisions = {k: PrecisionResult(**v) for k, v in data.get("precisions", {}).items()}
        return cls(**{**data, "precisions": precisions})


def failure_lines(text: str) -> list[str]:
    """The failure's own lines: pytest's ``E`` lines when there is a traceback, else the text."""
    lines = text.splitlines()
    e_lines = [line[1:].strip() for line in lines if line.startswith("E ")]
    return [line for line in (e_lines or [line.rstrip() for line in lines]) if line.strip()]


def cause_line(lines: list[str]) -> str:
    """The first meaningful line: skip bare exception names (``ParityFailure:``) and tracebacks."""
    for line in lines:
        stripped = line.strip()
        if re.fullmatch(r"[\w.]+(Error|Failure|Exception):?", stripped) or stripped.startswith("Traceback"):
            continue
        stripped = re.sub(r"^(Failed|[\w.]+(Error|Failure|Exception)): ", "", stripped)
        return stripped if len(stripped) <= CAUSE_CHARS else stripped[: CAUSE_CHARS - 1] + "…"
    return ""


#: Lines of a parity failure's detail worth a place beside its cause in the table.
PARITY_FACTS = (r"mismatched elements: .*", r"max abs error \(finite elements\): \S+")


def summary(slot: PrecisionResult) -> str:
    """The cause, and for a parity failure how far off it was (``mismatched elements: 1 / 1000``)."""
    if slot.stage != "parity":
        return slot.cause
    facts = [m.group(0) for pattern in PARITY_FACTS if (m := re.search(pattern, slot.detail))]
    return "; ".join([slot.cause, *facts])


def stage_of(cause: str) -> str:
    for pattern, stage in STAGES:
        if re.search(pattern, cause):
            return stage
    return "run"


def _precision_of(nodeid: str) -> tuple[str, str] | None:
    match = re.search(r"::(test_parity|test_speed)\[(?:\w+-)?(\w+)\]$", nodeid)
    return (match.group(1), match.group(2)) if match else None


def model_result(entry: Any, payload: dict[str, Any], file_name: str) -> ModelResult:
    """This entry's result from the collector's payload (a session may hold several models)."""
    result = ModelResult(entry.name, entry.library, entry.family, entry.notes)
    result.build_s = payload.get("build_seconds", {}).get(entry.name)
    for record in payload.get("records", []):
        nodeid = record["nodeid"]
        if not nodeid.split("::")[0].endswith(file_name):
            continue
        found = _precision_of(nodeid)
        if found is None:
            continue
        test, precision = found
        slot = result.precisions.setdefault(precision, PrecisionResult())
        if test == "test_speed":
            speed = record["properties"].get("speed")
            if speed and record["when"] == "call":
                slot.emulator_ms, slot.torch_ms, slot.ratio = speed["emulator_ms"], speed["torch_ms"], speed["ratio"]
            continue
        if record["when"] == "setup":
            seconds = record["duration"]
            if result.build_s is not None and precision == _first_precision(payload, file_name):
                seconds -= result.build_s
            slot.convert_s = round(max(seconds, 0.0), 3)
        if record["outcome"] == "passed":
            if record["when"] == "call":
                slot.verdict = "pass"
            continue
        lines = failure_lines(record["text"])
        slot.cause = cause_line(lines)
        slot.detail = "\n".join(lines[:DETAIL_LINES])
        if record["outcome"] == "skipped":
            slot.verdict, slot.stage = "skip", ""
        elif record["when"] == "call":
            slot.verdict, slot.stage = "fail", stage_of(slot.cause)
        else:
            slot.verdict, slot.stage = "error", record["when"]
    return result


def _first_precision(payload: dict[str, Any], file_name: str) -> str | None:
    """The precision whose setup built the model (the first parity test of the file)."""
    for record in payload.get("records", []):
        if record["nodeid"].split("::")[0].endswith(file_name) and record["when"] == "setup":
            found = _precision_of(record["nodeid"])
            return found[1] if found else None
    return None
