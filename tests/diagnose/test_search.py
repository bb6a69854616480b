"""The mixed-precision search on real conversions: what it proposes really passes."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pytest_coreml_parity._coremltools import import_coremltools
from pytest_coreml_parity.diagnose import find_mixed_precision
from pytest_coreml_parity.diagnose.fix import passes
from pytest_coreml_parity.diagnose.search import Checker, search
from pytest_coreml_parity.diagnose.subject import Subject, as_arrays
from pytest_coreml_parity.verdict import outputs_match, preset

from .models import CASES, complex_div

ct = import_coremltools()


def _snippet_model(fix, model, examples):
    """Run the paste-ready snippet as a user would, with a fresh trace."""
    traced = torch.jit.trace(model, examples)
    inputs = [ct.TensorType(name=f"x{i}", shape=x.shape) for i, x in enumerate(examples)]
    scope = {"ct": ct, "traced_model": traced, "inputs": inputs}
    exec(fix.snippet, scope)
    return scope["mlmodel"]


def _parity(mlmodel, model, input_sets):
    subject = Subject.from_torch(model, input_sets[0])
    sets = [(str(i), as_arrays(x)) for i, x in enumerate(input_sets)]
    return passes(mlmodel, sets, [subject.reference(x) for _, x in sets], preset("fp16"))


@pytest.mark.parametrize("name", ["complex_div", "large_activations", "masked_attention", "transformer_block"])
def test_fix_is_found_and_passes_once_reconverted(fixed, name):
    fix = fixed(name)
    assert fix.found, fix.message
    assert fix.verified_on == ("failing inputs #1", "example inputs")
    model, examples, failing = CASES[name]()
    mlmodel = _snippet_model(fix, model, examples)
    assert _parity(mlmodel, model, [failing, examples])
    assert f"{len(fix.kept_ops)} of {fix.n_candidates} ops" in fix.text()


def test_complex_div_fix_is_small_cheap_and_keeps_the_overflowing_mul(fixed, localized):
    fix = fixed("complex_div")
    assert len(fix.kept_ops) <= fix.n_candidates // 3  # far fewer than all
    assert localized("complex_div").first_non_finite.name in fix.kept_ops
    assert fix.conversions <= 2 * math.log2(fix.n_candidates) + 4
    assert fix.baseline_conversions == 2
    assert len(fix.steps) == fix.conversions


def test_complex_div_hand_written_selectors_fail():
    """The traps from the issue: real_div alone, or mul/add/sub without real_div."""
    model, examples, failing = complex_div()
    subject = Subject.from_torch(model, examples)
    gates = preset("fp16")
    sets = [("failing", as_arrays(failing))]
    refs = [subject.reference(sets[0][1])]
    div_only = frozenset({"16", "21"})
    arithmetic = frozenset({"8", "9", "den", "12", "13", "15", "17", "18", "20"})
    assert not passes(subject.model("fp16", div_only), sets, refs, gates)
    assert not passes(subject.model("fp16", arithmetic), sets, refs, gates)
    assert passes(subject.model("fp16", arithmetic | div_only), sets, refs, gates)


def test_bisection_alone_finds_a_verified_fix():
    model, examples, failing = complex_div()
    fix = find_mixed_precision(model, examples, [failing], use_seed=False)
    assert fix.found
    phases = {s.phase for s in fix.steps}
    assert {"bisect-prefix", "bisect-suffix", "minimize"} <= phases
    assert len(fix.kept_ops) <= fix.n_candidates // 3
    assert _parity(_snippet_model(fix, model, examples), model, [failing, examples])


def test_counterexamples_are_checked_too():
    model, examples, failing = complex_div()
    other = failing[0].clone()
    other[5] = torch.tensor([1.0, 400.0, 1.0, 400.0])  # ia*ib and ib*ib overflow
    fix = find_mixed_precision(model, examples, [failing], counterexamples=[(other,)])
    assert fix.found and "counterexample #1" in fix.verified_on
    assert _parity(_snippet_model(fix, model, examples), model, [failing, (other,), examples])


def test_healthy_model_needs_no_fix(fixed):
    fix = fixed("healthy")
    assert not fix.found and "nothing to fix" in fix.message
    assert fix.conversions == 0


def test_search_algorithm_finds_a_two_op_chain_in_log_time():
    """The pure algorithm, on a known culprit set: bisection then minimization."""
    candidates = [f"op{i}" for i in range(64)]
    needed = {"op20", "op23"}
    checker = Checker(lambda kept: needed <= kept, budget=100)
    assert search(candidates, frozenset(), checker) == needed
    bisections = [s for s in checker.steps if s.phase.startswith("bisect")]
    assert len(bisections) <= 2 * math.log2(len(candidates))
    assert len(checker.steps) <= 2 * math.log2(len(candidates)) + 6


def test_budget_is_enforced():
    checker = Checker(lambda kept: {"a", "z"} <= kept, budget=3)
    with pytest.raises(Exception) as info:
        search([chr(c) for c in range(ord("a"), ord("z") + 1)], frozenset(), checker)
    assert type(info.value).__name__ == "BudgetExceeded"
    assert len(checker.steps) == 3


def test_parity_check_flags_nan_where_torch_is_finite():
    want = np.array([1.0, 2.0], dtype=np.float32)
    assert outputs_match(want.astype(np.float16), want, 1e-2, 1e-2)
    assert not outputs_match(np.array([1.0, np.nan]), want, 1e-2, 1e-2)
    assert not outputs_match(np.array([1.0, np.inf]), want, 1e-2, 1e-2)
