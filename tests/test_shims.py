"""Converter shims (shims.py): each lowering against torch through a real conversion and
the real emulator; registered only while converting, only where coremltools lacks the
op; part of the cache key, as are the user's own lowerings."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from pytest_coreml_parity import emulate, shims
from pytest_coreml_parity.convert import (
    ConversionError,
    ConversionOptions,
    capture,
    conversion_key,
    convert_model,
    function_key,
)

from .real_models import tiny, token_ids


def _registry() -> dict[str, Any]:
    from coremltools.converters.mil.frontend.torch.torch_op_registry import _TORCH_OPS_REGISTRY

    mapping: dict[str, Any] = _TORCH_OPS_REGISTRY.name_to_func_mapping
    return mapping


class Diff(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return (
            torch.diff(x, dim=-1, prepend=x[:, :1] - 1),  # transformers' packed-sequence form
            torch.diff(x, n=2, dim=0),
            torch.diff(x, dim=1, append=x[:, -2:]),
        )


class NewOnes(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        keep = x.new_ones((), dtype=torch.bool)  # transformers' mask functions
        return torch.where(keep & (x > 0), x, -x), x.new_ones((2, x.shape[1])) * 3


class MixedAnd(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ints = (x > 0).to(torch.int32)
        return torch.where((ints & (x < 1)).bool(), x, torch.zeros_like(x))


def _run(model: torch.nn.Module, x: torch.Tensor, **options: Any) -> list[np.ndarray]:
    mlmodel = convert_model(model, (x,), ConversionOptions(**options))
    out = emulate(mlmodel, {"x": x.numpy()})
    return [out[o.name] for o in mlmodel.get_spec().description.output]


def test_coremltools_9_lacks_every_shim_op() -> None:
    import coremltools

    missing = {s.op for s in shims.missing()}
    if coremltools.__version__ == "9.0":
        assert missing == {"diff", "new_ones", "alias", "__and__"}
    assert all(s.backports for s in shims.SHIMS)


def test_registered_only_while_converting_and_the_registry_is_put_back() -> None:
    before = dict(_registry())
    with shims.registered() as active:
        assert {s.op for s in active} == {s.op for s in shims.missing()}
        for shim in active:
            assert _registry()[shim.op].__module__ == shims.__name__
            with shims.registered() as inner:  # re-entrant: the outer registration stays
                assert inner == active
            assert _registry()[shim.op].__module__ == shims.__name__
    assert _registry() == before
    with shims.registered(enabled=False) as none:
        assert none == ()
        assert _registry() == before


@pytest.mark.parametrize("export", [False, True], ids=["trace", "export"])
def test_diff_matches_torch(export: bool) -> None:
    x = torch.tensor([[0.0, 1, 2, 7, 8], [3, 4, 4, 5, 9], [1, 1, 2, 3, 5]])
    got = _run(Diff(), x, use_export=export)
    for g, want in zip(got, Diff()(x), strict=True):
        np.testing.assert_array_equal(g, want.numpy())


def _lacks(op: str) -> bool:
    """Whether the installed coremltools has no lowering of its own for ``op`` (9.0 lacks
    new_ones and the mixed-bool ``__and__``; 9.1.dev1 has them): only then does a
    conversion without the shims fail."""
    return op in {shim.op for shim in shims.missing()}


def test_new_ones_keeps_its_dtype_and_matches_torch() -> None:
    x = torch.tensor([[-1.0, 2.0, 0.5], [3.0, -4.0, 0.0]])
    if _lacks("new_ones"):
        with pytest.raises(ConversionError, match="op 'new_ones'"):
            _run(NewOnes(), x, shims=False)
    got = _run(NewOnes(), x)
    for g, want in zip(got, NewOnes()(x), strict=True):
        np.testing.assert_array_equal(g, want.numpy())


def test_mixed_bool_and_through_export_matches_torch() -> None:
    x = torch.tensor([[-1.0, 0.5, 0.25], [3.0, -4.0, 0.75]])
    if _lacks("__and__"):
        with pytest.raises(ConversionError, match="kind __and__"):
            _run(MixedAnd(), x, use_export=True, shims=False)
    (got,) = _run(MixedAnd(), x, use_export=True)
    np.testing.assert_array_equal(got, MixedAnd()(x).numpy())


def test_without_shims_the_op_is_named_in_the_error() -> None:
    x = torch.ones(3, 5)
    with pytest.raises(ConversionError, match="op 'diff'"):
        convert_model(Diff(), (x,), ConversionOptions(shims=False))


#: The op each model stops at without the shims (with coremltools 9.0).
BLOCKED_AT = {"gpt2": "diff", "llama": "diff", "bart": "new_ones"}


@pytest.mark.parametrize("name", sorted(BLOCKED_AT))
def test_transformers_models_convert_with_the_shims(name: str) -> None:
    class Logits(torch.nn.Module):  # the key is tested elsewhere; here: the ops
        def __init__(self) -> None:
            super().__init__()
            self.model = tiny(name)

        def forward(self, ids: torch.Tensor) -> torch.Tensor:
            return self.model(ids, use_cache=False)[0]

    ids = token_ids()
    model = Logits().eval()
    if _lacks(BLOCKED_AT[name]):
        with pytest.raises(ConversionError, match=rf"op '{BLOCKED_AT[name]}'"):
            convert_model(model, (ids,), ConversionOptions(shims=False))
    mlmodel = convert_model(model, (ids,), ConversionOptions())
    (got,) = emulate(mlmodel, {"ids": ids.numpy().astype(np.int32)}).values()
    with torch.no_grad():
        want = model(ids).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_the_registry_is_part_of_the_key() -> None:
    from coremltools.converters.mil.frontend.torch import register_torch_op
    from coremltools.converters.mil.frontend.torch.ops import _get_inputs
    from coremltools.converters.mil.mil import Builder as mb

    x = torch.ones(2, 3)
    captured = capture(torch.nn.ReLU(), (x,), ConversionOptions())
    on = conversion_key(captured, ConversionOptions())
    off = conversion_key(captured, ConversionOptions(shims=False))
    assert on != off  # coremltools 9.0 lacks every shim op: the registered set differs
    assert conversion_key(captured, ConversionOptions()) == on

    def user_frac(context: Any, node: Any) -> None:  # a user's lowering, as in a conftest
        (x,) = _get_inputs(context, node, expected=1)
        context.add(mb.sub(x=x, y=mb.floor(x=x), name=node.name))

    def frac_fixed(context: Any, node: Any) -> None:  # the same op, lowered differently
        (x,) = _get_inputs(context, node, expected=1)
        context.add(mb.sub(x=x, y=mb.round(x=x), name=node.name))

    frac_fixed.__name__ = "user_frac"
    register_torch_op(user_frac)
    try:
        first = conversion_key(captured, ConversionOptions())
        assert first != on
        register_torch_op(frac_fixed, override=True)
        assert conversion_key(captured, ConversionOptions()) not in (on, first)
        assert shims.registry_key(True, function_key) == shims.registry_key(True, function_key)
    finally:
        del _registry()["user_frac"]
    assert conversion_key(captured, ConversionOptions()) == on
