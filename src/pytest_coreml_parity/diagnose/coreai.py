"""Diagnose a failing coreai-target test: the first non-finite op, then a verified fix.

Core AI has no ML Program for our emulator to record, but its interpreter reports
every op's value (:func:`pytest_coreml_parity.coreai.record`). So the diagnosis is:

1. the first op (in program order) whose output holds nan/inf, with its Core AI op
   type, the aten op it was lowered from and the user's torch source line;
2. with ``--coreml-search-fix``, a mixed-precision search in coreai-opt's terms
   (``cast_fp32_to_fp16(ep, ignored_ops=...)``): keep that op's aten target in fp32,
   re-convert through the coreai convert path, judge with the one verdict
   (:func:`pytest_coreml_parity.verdict.outputs_match`), and repeat from the next
   non-finite op until parity holds or the budget is spent.
"""

from __future__ import annotations

import linecache
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import messages
from ..precisions import is_exact
from ..verdict import Gates, judge
from .subject import torch_reference

#: Conversions the fix search may make (each is a coreai-torch conversion, ~1-2 s).
SEARCH_BUDGET = 8
#: aten ops that only move values between dtypes: keeping one in fp32 fixes nothing.
_CASTS = frozenset({"_to_copy", "to", "convert_element_type", "clone"})


@dataclass(frozen=True)
class NonFiniteOp:
    """The first op whose output holds nan/inf, as the interpreter computed it."""

    name: str
    op_type: str
    torch_target: str | None
    source_line: str | None
    count: int
    size: int

    @property
    def code(self) -> str | None:
        """The text of :attr:`source_line` (``"path.py:LINE"``), if the file is readable."""
        if self.source_line is None:
            return None
        path, _, line = self.source_line.rpartition(":")
        if not line.isdigit():
            return None
        text = linecache.getline(path, int(line)).strip()
        return text or None

    def lines(self) -> list[str]:
        out = [
            messages.COREAI_FIRST_NONFINITE.format(
                name=self.name,
                op_type=self.op_type,
                torch_target=self.torch_target or "no torch node",
                count=self.count,
                size=self.size,
            )
        ]
        if self.source_line is not None:
            code = self.code
            where = f"{self.source_line}: {code}" if code else self.source_line
            out.append(messages.COREAI_SOURCE.format(where=where))
        return out


@dataclass(frozen=True)
class CoreAIFix:
    """The fix search's outcome: ``fp32_ops`` that restore parity, or why none was found."""

    fp32_ops: frozenset[str] | None
    tried: tuple[str, ...]
    conversions: int
    sets: tuple[str, ...]
    why: str = ""

    @property
    def found(self) -> bool:
        return self.fp32_ops is not None

    @property
    def snippet(self) -> str | None:
        """Paste-ready coreai-opt code keeping :attr:`fp32_ops` in fp32."""
        if self.fp32_ops is None:
            return None
        from ..coreai.convert import ignored_ops_snippet

        return ignored_ops_snippet(self.fp32_ops)

    def text(self) -> str:
        if self.fp32_ops is None:
            return messages.COREAI_FIX_NOT_FOUND.format(
                conversions=self.conversions, ops=sorted(self.tried), why=self.why
            )
        head = messages.COREAI_FIX_FOUND.format(
            sets=", ".join(self.sets), ops=sorted(self.fp32_ops), conversions=self.conversions
        )
        return f"{head}\n{self.snippet}"


@dataclass(frozen=True)
class CoreAIDiagnosis:
    """What :func:`diagnose_coreai` found; the plugin shows :meth:`text` as a report section."""

    precision: str
    backend: str
    first_nonfinite: NonFiniteOp | None
    fix: CoreAIFix | None = None

    @property
    def healthy(self) -> bool:
        return self.first_nonfinite is None

    def to_dict(self) -> dict[str, Any]:
        """The JSON report's body (``--coreml-report-dir``): the first non-finite op and the fix."""
        op = self.first_nonfinite
        fix = self.fix
        return {
            "target": "coreai",
            "precision": self.precision,
            "backend": self.backend,
            "first_nonfinite": None if op is None else {
                "name": op.name, "op_type": op.op_type, "torch_target": op.torch_target,
                "source_line": op.source_line, "code": op.code, "count": op.count, "size": op.size,
            },
            "fix": None if fix is None else {
                "found": fix.found, "fp32_ops": sorted(fix.fp32_ops) if fix.fp32_ops is not None else None,
                "tried": list(fix.tried), "conversions": fix.conversions, "sets": list(fix.sets),
                "why": fix.why, "snippet": fix.snippet,
            },
        }  # fmt: skip

    def text(self, written: Sequence[Path] = ()) -> str:
        parts = [messages.COREAI_DIAGNOSIS_HEADER.format(precision=self.precision, backend=self.backend)]
        if self.first_nonfinite is not None:
            parts.extend(self.first_nonfinite.lines())
        else:
            parts.append(messages.COREAI_NO_NONFINITE)
        if self.fix is not None:
            parts.append(self.fix.text())
        elif not self.healthy:
            parts.append(messages.COREAI_SEARCH_FIX_HINT)
        if written:
            parts.append(messages.REPORT_WRITTEN.format(paths=", ".join(str(p) for p in written)))
        return "\n".join(parts)


def _aten_name(torch_target: str | None) -> str | None:
    """``"aten.mul.Tensor"`` -> ``"mul"`` (the name ``fp32_ops``/``ignored_ops`` use)."""
    if not torch_target:
        return None
    parts = torch_target.split(".")
    return parts[1] if len(parts) >= 2 and parts[0] == "aten" else None


def first_nonfinite(program: Any, inputs: Sequence[np.ndarray], *, skip_casts: bool = False) -> NonFiniteOp | None:
    """The first op of ``program`` whose output holds nan/inf on ``inputs``, or None.

    ``skip_casts`` passes over dtype casts (a boundary cast of an fp32 op's overflowing
    output is not the op to keep in fp32; the consumer that reads it is).
    """
    from ..coreai import record

    with np.errstate(over="ignore"):  # inputs cast to an fp16 program overflow, as on device
        values = record(program, tuple(inputs))
    for value in values:
        if not value.nonfinite:
            continue
        if skip_casts and (_aten_name(value.torch_target) in _CASTS or value.torch_target is None):
            continue
        return NonFiniteOp(
            name=value.name,
            op_type=value.op_type,
            torch_target=value.torch_target,
            source_line=value.source_line,
            count=value.nonfinite,
            size=int(value.value.size),
        )
    return None


def _parity(
    program: Any, torch_model: Any, examples: Sequence[Any], arrays: Sequence[np.ndarray], gates: Gates
) -> bool:
    """The one verdict on one input set: the program's outputs (widened) against torch fp32."""
    import torch

    tensors = [
        torch.from_numpy(np.array(a, copy=True)).to(example.dtype)
        for a, example in zip(arrays, examples, strict=True)
    ]
    expected = torch_reference(torch_model, tensors)
    with np.errstate(over="ignore"):
        result = program(*arrays)
    actual = _leaves(result)
    if len(actual) != len(expected):
        return False
    try:
        return all(
            judge(np.asarray(a, dtype=np.float32), e, gates).passed
            for a, e in zip(actual, expected, strict=True)
        )
    except ValueError:  # shapes differ
        return False


def _leaves(value: Any) -> list[Any]:
    if isinstance(value, (tuple, list)):
        return [leaf for item in value for leaf in _leaves(item)]
    if isinstance(value, dict):
        return [leaf for item in value.values() for leaf in _leaves(item)]
    return [value]


def search_coreai_fix(
    torch_model: Any,
    example_inputs: Sequence[Any],
    start: NonFiniteOp,
    input_sets: Sequence[tuple[str, Sequence[np.ndarray]]],
    *,
    gates: Gates,
    fp32_ops: frozenset[str] = frozenset(),
    budget: int = SEARCH_BUDGET,
) -> CoreAIFix:
    """Grow ``fp32_ops`` from ``start``'s aten op until every input set passes the verdict.

    Each round re-converts with ``convert_for_coreai(..., "mixed", ops)`` (the coreai
    convert path), checks parity on every set, and otherwise adds the aten op of the
    mixed program's first non-finite non-cast op on the first failing set.
    """
    from ..coreai import convert_for_coreai

    ops = set(fp32_ops)
    tried: list[str] = []
    conversions = 0
    names = tuple(name for name, _ in input_sets)
    finding: NonFiniteOp | None = start
    while True:
        op = _aten_name(finding.torch_target) if finding is not None else None
        if finding is None or op is None:
            why = (
                "no nan/inf left, but outputs still differ beyond tolerance"
                if finding is None
                else f"{finding.name} ({finding.op_type}) maps to no aten op"
            )
            return CoreAIFix(None, tuple(tried), conversions, names, why)
        if op in ops:
            return CoreAIFix(None, tuple(tried), conversions, names,
                             f"{op} is already kept in fp32 and {finding.name} is still non-finite")
        if conversions >= budget:
            return CoreAIFix(None, tuple(tried), conversions, names, f"budget of {budget} conversions spent")
        ops.add(op)
        tried.append(op)
        conversions += 1
        program = convert_for_coreai(torch_model, example_inputs, "mixed", frozenset(ops))
        failing = next(
            (arrays for _, arrays in input_sets
             if not _parity(program, torch_model, example_inputs, arrays, gates)),
            None,
        )
        if failing is None:
            return CoreAIFix(frozenset(ops), tuple(tried), conversions, names)
        finding = first_nonfinite(program, failing, skip_casts=True)


def diagnose_coreai(
    model: Any,
    inputs: Sequence[np.ndarray],
    *,
    rtol: float | None = None,
    atol: float | None = None,
    gates: Gates | None = None,
) -> CoreAIDiagnosis | None:
    """Diagnose a coreai-target model (its ``program``) on the failing ``inputs``.

    None for fp32 programs (nothing is cast). The fix search runs with
    ``model.search_fix`` and verifies with the failed assertion's ``gates`` (else the
    fp16 preset at its ``rtol``/``atol``).
    """
    if is_exact(model.precision) or model.program is None:
        return None
    arrays = tuple(np.asarray(x) for x in inputs)
    finding = first_nonfinite(model.program, arrays)
    backend = model.backend.name if model.backend is not None else "?"
    fix = None
    if model.search_fix and finding is not None:
        import dataclasses

        from ..verdict import preset

        if gates is None:  # the one verdict: the failed assertion's gates, else the fp16 preset
            base = preset("fp16")
            gates = dataclasses.replace(
                base,
                rtol=base.rtol if rtol is None else rtol,
                atol=base.atol if atol is None else atol,
            )
        examples = tuple(model.example_inputs)
        sets = [("failing inputs", arrays), ("example inputs", tuple(x.detach().numpy() for x in examples))]
        fix = search_coreai_fix(
            model.torch_model, examples, finding, sets, gates=gates,
            fp32_ops=frozenset(model.options.fp32_ops or ()),
        )
    return CoreAIDiagnosis(model.precision, backend, finding, fix)


__all__ = [
    "SEARCH_BUDGET",
    "CoreAIDiagnosis",
    "CoreAIFix",
    "NonFiniteOp",
    "diagnose_coreai",
    "first_nonfinite",
    "search_coreai_fix",
]
