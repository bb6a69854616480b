"""Outputs by key (outputs.py): structures, keys, Core ML names, dropped leaves."""

from __future__ import annotations

import json
import warnings

import pytest
import torch

from pytest_coreml_parity import outputs
from pytest_coreml_parity.error_text import cause_reason

from .real_models import import_transformers


def test_a_tuple_of_tensors_keeps_its_keyless_structure() -> None:
    value = (torch.ones(1), [torch.ones(2), torch.ones(3)])
    structure = outputs.structure_of(value)
    assert structure == ["tuple", ["t", ["list", ["t", "t"]]]]  # cache entries stay valid
    assert not outputs.is_keyed(structure)
    assert outputs.labels(structure) == ("0", "1.0", "1.1")


def test_a_list_of_dicts_is_named_by_key() -> None:
    detections = [
        {"boxes": torch.ones(2, 4), "scores": torch.ones(2), "label": "car"},
        {"boxes": torch.zeros(1, 4), "scores": torch.zeros(1), "label": "dog"},
    ]
    structure = outputs.structure_of(detections)
    assert outputs.is_keyed(structure)
    assert outputs.labels(structure) == ("0.boxes", "0.scores", "1.boxes", "1.scores")
    assert outputs.coreml_names(structure) == ("out_0_boxes", "out_0_scores", "out_1_boxes", "out_1_scores")
    assert outputs.dropped(structure) == [("0.label", "str"), ("1.label", "str")]
    assert json.loads(json.dumps(structure)) == structure  # stored in the disk cache as JSON
    leaves = outputs.leaves(detections, structure)
    assert [tuple(t.shape) for t in leaves] == [(2, 4), (2,), (1, 4), (1,)]
    rebuilt = outputs.unflatten(structure, iter(leaves))
    assert list(rebuilt[1]) == ["boxes", "scores"] and rebuilt[1]["boxes"] is leaves[2]


def test_none_leaves_of_a_tuple_are_dropped_and_positions_kept_as_keys() -> None:
    structure = outputs.structure_of((torch.ones(1), None, torch.ones(2)))
    assert outputs.labels(structure) == ("0", "2")
    assert outputs.dropped(structure) == [("1", "NoneType")]
    assert outputs.unflatten(structure, iter("ab")) == ("a", "b")


def test_names_are_unique_identifiers() -> None:
    structure = outputs.structure_of({"a.b": torch.ones(1), "a_b": torch.ones(1), "": torch.ones(1)})
    assert outputs.coreml_names(structure) == ("a_b", "a_b_1", "output")


def test_no_tensor_at_all_is_an_error() -> None:
    with pytest.raises(outputs.OutputError, match="holding no tensor"):
        outputs.structure_of({"loss": None})


def test_a_causal_lm_output_is_keyed_and_its_cache_captured_off() -> None:
    tf = import_transformers()
    from .real_models import tiny, token_ids

    model = tiny("llama")
    with torch.no_grad():
        out = model(token_ids())
    structure = outputs.structure_of(out)
    assert outputs.labels(structure) == ("logits",)
    assert [kind for _key, kind in outputs.dropped(structure)] == ["DynamicCache"]
    assert outputs.capture_kwargs(model, structure) == {"use_cache": False}
    note = outputs.describe_keys(structure)
    assert note is not None and "logits" in note and "use_cache=False" in note
    assert isinstance(out, tf.modeling_outputs.CausalLMOutputWithPast)


def test_the_tracer_error_keeps_its_cause_line() -> None:
    tf = import_transformers()
    from .real_models import tiny, token_ids

    with pytest.raises(RuntimeError) as info, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # transformers' deprecations and TracerWarnings
        torch.jit.trace(tiny("llama"), (token_ids(),), check_trace=False)  # type: ignore[no-untyped-call]
    text = str(info.value)
    first = text.strip().splitlines()[0]
    assert "DynamicCache" not in first  # the first line alone does not say why
    reason = cause_reason(text)
    assert reason.startswith("Tracer cannot infer type of CausalLMOutputWithPast")
    assert reason.endswith("got value of type DynamicCache.)")
    assert len(reason) < 500
    assert tf is not None


def test_a_single_line_error_is_unchanged() -> None:
    text = "PyTorch convert function for op 'diff' not implemented."
    assert cause_reason(text) == text
    assert cause_reason("first line\n  tensor([1, 2,\n  3])") == "first line"
