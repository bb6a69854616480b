"""The one-line reason of a capture or conversion error: its first line and its cause.

torch and coremltools put the cause of many errors on a later line. torch's tracer,
given a transformers ``ModelOutput``, says ``Tracer cannot infer type of
CausalLMOutputWithPast(loss=None, logits=tensor([[[...`` on its first line, then
prints the tensors, and only on the ninth line ``...but instead got value of type
DynamicCache``. :func:`cause_reason` keeps the first line (shortened when a cause
follows) and appends that cause line.

A leaf module: no package imports.
"""

from __future__ import annotations

import re

#: Lines that state a cause, wherever they are (checked in order, first match wins).
CAUSE_PATTERNS: tuple[re.Pattern[str], ...] = (
    re.compile(r"got (?:a )?value of type"),
    re.compile(r"^(?:Caused by|The above exception|Cause)\b", re.IGNORECASE),
    re.compile(r"^[A-Z]\w*(?:Error|Exception): "),
    re.compile(r"\b(?:not (?:implemented|supported)|unsupported|cannot|can't|must|expected)\b", re.IGNORECASE),
)
#: Lines that are data or advice, never a cause: tensor reprs, shapes, log hints.
_NOISE = re.compile(
    r"^(?:[\[\](){}.,\d+\-]|tensor\(|grad_fn=|dtype=|device=|File \"|Traceback|\^|~)"
    r"|^(?:For more information|Set TORCH_LOGS|To (?:see|get|debug)|Please|HINT|Hint)\b"
)
MAX_FIRST = 160
MAX_LINE = 300


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def cause_line(lines: list[str]) -> str | None:
    """The line after the first that states the cause, or None."""
    rest = [ln for ln in lines[1:] if not _NOISE.search(ln)]
    for pattern in CAUSE_PATTERNS:
        for line in rest:
            if pattern.search(line):
                return line.lstrip(":").strip()
    return None


def cause_reason(text: str) -> str:
    """The first informative line of an error message, plus its cause line when a later
    line states one: ``Tracer cannot infer type of CausalLMOutputWithPast(...; cause:
    Only tensors ... but instead got value of type DynamicCache.``"""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if not lines:
        return _short(text, MAX_LINE)
    cause = cause_line(lines)
    if cause is None or cause in lines[0]:
        return _short(lines[0], MAX_LINE)
    return f"{_short(lines[0], MAX_FIRST)} (cause: {_short(cause, MAX_LINE)})"


__all__ = ["CAUSE_PATTERNS", "cause_line", "cause_reason"]
