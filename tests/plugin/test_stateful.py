"""Stateful models: state carried across the calls of one test, on both sides.

Real conversions (states declared by the default recipe, or forgotten by a user's
``coreml_convert``) and the real emulator; outcomes and messages through pytester.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from pytest_coreml_parity import messages

MODELS = '''
import math

import pytest
import torch

D, L = 16, 8


class Accumulator(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("acc", torch.zeros(2, 3))

    def forward(self, x):
        self.acc.add_(x)
        return self.acc * 2


class KVDecoder(torch.nn.Module):
    """One attention head over a KV cache held in registered buffers."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.q, self.k, self.v, self.o = (torch.nn.Linear(D, D) for _ in range(4))
        self.register_buffer("k_cache", torch.zeros(L, D))
        self.register_buffer("v_cache", torch.zeros(L, D))

    def forward(self, x, pos, mask):
        k, v = self.k(x), self.v(x)
        self.k_cache.mul_(1 - pos).add_(pos * k)
        self.v_cache.mul_(1 - pos).add_(pos * v)
        scores = self.q(x) @ self.k_cache.T / math.sqrt(D) + mask
        return self.o(torch.softmax(scores, -1) @ self.v_cache)


def decode_steps(n=L):
    g = torch.Generator().manual_seed(1)
    steps = []
    for t in range(n):
        pos = torch.zeros(L, 1)
        pos[t] = 1
        mask = torch.full((1, L), -1e4)
        mask[0, : t + 1] = 0
        steps.append((torch.randn(1, D, generator=g), pos, mask))
    return steps
'''

PASSING = '''
import pytest
import torch
from pytest_coreml_parity import assert_parity, assert_rollout
from models import Accumulator, KVDecoder, decode_steps


class TestAccumulator:
    @pytest.fixture
    def torch_model(self):
        return Accumulator().eval()

    @pytest.fixture
    def example_inputs(self):
        return (torch.ones(2, 3),)

    def test_first(self, coreml_model):
        for step in range(1, 6):
            assert assert_parity(coreml_model, torch.ones(2, 3))[0, 0] == 2 * step

    def test_second_starts_fresh(self, coreml_model):
        assert coreml_model(torch.ones(2, 3))[0, 0] == 2  # advances both sides
        assert assert_parity(coreml_model, torch.ones(2, 3))[0, 0] == 4
        assert [s.passed for s in coreml_model.steps] == [None, True]


class TestKVDecoder:
    @pytest.fixture
    def torch_model(self):
        return KVDecoder().eval()

    @pytest.fixture
    def example_inputs(self):
        return decode_steps(1)[0]

    def test_rollout(self, coreml_model):
        assert len(assert_rollout(coreml_model, decode_steps())) == 8

    def test_steps(self, coreml_model):
        for feed in decode_steps():
            assert_parity(coreml_model, *feed)
        assert [s.step for s in coreml_model.steps] == list(range(1, 9))
'''


@pytest.fixture
def stateful(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyfile(models=MODELS)
    return pytester


def test_accumulator_and_kv_cache_decoder_pass_at_fp16_each_test_fresh(stateful, run) -> None:
    stateful.makepyfile(test_passing=PASSING)
    result = run("-v", "--coreml-precisions=fp16")
    result.assert_outcomes(passed=4)


def test_fp32_accumulator_passes_and_kv_decoder_explains_fp16_state(stateful, run) -> None:
    stateful.makepyfile(test_passing=PASSING)
    result = run("-v", "--coreml-precisions=fp32")
    # Exact sums pass; the decoder's fp16-stored cache is beyond fp32's preset at step 1.
    result.assert_outcomes(passed=2, failed=2)
    result.stdout.fnmatch_lines(["*TestAccumulator::test_first[[]fp32[]] PASSED*"])
    assert messages.STATE_FP32_HINT in result.stdout.str().replace("\nE       ", " ")
    result.stdout.fnmatch_lines(
        [f"E * {messages.ROLLOUT_FAILED.format(n=8, step=1)}", "E * drift over the steps*"]
    )


FROZEN = '''
import coremltools as ct
import pytest
from pytest_coreml_parity import assert_parity
from models import KVDecoder, decode_steps


@pytest.fixture
def torch_model():
    return KVDecoder().eval()


@pytest.fixture
def example_inputs():
    return decode_steps(1)[0]


@pytest.fixture
def coreml_convert():
    def convert(torch_model, example_inputs, compute_precision):
        traced = torch.jit.trace(torch_model, example_inputs)
        inputs = [ct.TensorType(name=n, shape=x.shape) for n, x in zip(("x", "pos", "mask"), example_inputs)]
        return ct.convert(traced, inputs=inputs, compute_precision=compute_precision,
                          minimum_deployment_target=ct.target.iOS18)  # no states=
    return convert


def test_decode(coreml_model):
    for feed in decode_steps():
        assert_parity(coreml_model, *feed)
'''


def test_forgotten_states_fail_naming_the_frozen_buffer_not_overflow(stateful, run) -> None:
    stateful.makepyfile(test_frozen="import torch\n" + FROZEN)
    result = run("--coreml-precisions=fp16")
    result.assert_outcomes(failed=1)
    text = result.stdout.str()
    for name in ("k_cache", "v_cache"):
        first = messages.FROZEN_STATE.format(name=name, shape=(8, 16)).split(":")[0]
        assert first in text, text
    assert "this is not float16 overflow" in text
    assert "hint: float16 overflow" not in text  # neither the message nor a diagnosis blames it
    assert messages.PARITY_HINT not in text.replace("\nE       ", " ")
    result.stdout.fnmatch_lines(["*" + messages.STATEFUL_NO_DIAGNOSIS.split(":")[0] + "*"])


DRIFT = '''
import pytest
import torch
from pytest_coreml_parity import assert_rollout
from models import Accumulator


@pytest.fixture
def torch_model():
    return Accumulator().eval()


@pytest.fixture
def example_inputs():
    return (torch.ones(2, 3),)


def test_drift(coreml_model):
    steps = [torch.full((2, 3), 0.1)] * 30
    assert_rollout(coreml_model, steps, rtol=1e-3, scale_atol=0)
'''


def test_drift_table_names_the_first_step_beyond_tolerance(stateful, run) -> None:
    stateful.makepyfile(test_drift=DRIFT)
    result = run("--coreml-precisions=fp16")
    result.assert_outcomes(failed=1)
    text = result.stdout.str()
    match = re.search(r"first step beyond tolerance: (\d+)\)", text)
    assert match, text
    first = int(match.group(1))
    assert 1 < first < 30, text  # fp16 rounding of the sum accumulates until it shows
    assert messages.ROLLOUT_FAILED.format(n=30, step=first) in text
    rows = dict(re.findall(r"^E\s+(\d+)\s+\S+\s+\S+\s+\S+\s+(PASS|FAIL|pass|fail)\S*$", text, re.M))
    assert rows["1"] == messages.GATE_PASSED and rows[str(first)] == messages.GATE_FAILED, rows
    assert str(first - 1) in rows and rows[str(first - 1)] == messages.GATE_PASSED


# ------------------------------------------------------------- without pytester


def _nested_model() -> Any:
    import torch

    class Inner(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("acc", torch.ones(2, 3))  # a non-zero initial value

        def forward(self, x: Any) -> Any:
            self.acc.add_(x)
            return self.acc * 2

    class Outer(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = Inner()

        def forward(self, x: Any) -> Any:
            return self.inner(x) + 1

    return Outer().eval()


def test_capture_names_updated_buffers_and_leaves_them_as_they_were() -> None:
    import torch

    from pytest_coreml_parity.convert import ConversionOptions, capture

    model = _nested_model()
    captured = capture(model, (torch.ones(2, 3),), ConversionOptions())
    assert captured.states == (("inner.acc", (2, 3)),)
    assert torch.equal(model.inner.acc, torch.ones(2, 3))  # neither the run nor the trace advanced it


def test_nested_buffer_state_starts_from_the_torch_initial_value() -> None:
    import torch

    from pytest_coreml_parity import assert_parity
    from pytest_coreml_parity.cache import ConversionCache
    from pytest_coreml_parity.model import CoreMLModel, ModelSettings, Runtime

    model = CoreMLModel(
        ModelSettings(precision="fp16"), Runtime(ConversionCache(None), "emulator")
    )
    torch_model = _nested_model()
    model.bind(torch_model, (torch.ones(2, 3),))
    assert model.state_buffers == (("inner.acc", (2, 3)),) and model.frozen_buffers == ()
    got = [float(assert_parity(model, torch.ones(2, 3))[0, 0]) for _ in range(3)]
    assert got == [5.0, 7.0, 9.0]  # 2 * (1 + step) + 1: the state started at the buffer's 1
    assert torch.equal(torch_model.inner.acc, torch.ones(2, 3))  # the user's model is untouched
    model.reset_state()
    assert float(model(torch.ones(2, 3))[0, 0]) == 5.0


def test_coremltools_refuses_float32_states() -> None:
    """Why states are float16 at fp32 too (docs/usage.md#stateful-models)."""
    import coremltools as ct
    import numpy as np
    import torch

    from pytest_coreml_parity.convert import quiet_conversion

    model = _nested_model()
    traced = torch.jit.trace(model, (torch.ones(2, 3),), check_trace=False)
    state = ct.StateType(wrapped_type=ct.TensorType(shape=(2, 3), dtype=np.float32), name="inner.acc")
    with quiet_conversion(), pytest.raises(ValueError, match="State only support fp16 dtype"):
        ct.convert(
            traced, inputs=[ct.TensorType(name="x", shape=(2, 3))], states=[state],
            compute_precision=ct.precision.FLOAT32, minimum_deployment_target=ct.target.iOS18,
            skip_model_load=True,
        )  # fmt: skip


PACKAGES = '''
import pytest
from pytest_coreml_parity import assert_parity
from models import KVDecoder, decode_steps


@pytest.fixture
def torch_model():
    return KVDecoder().eval()


@pytest.fixture
def example_inputs():
    return decode_steps(1)[0]


@pytest.mark.coreml(package="stateful.mlpackage")
def test_stateful(coreml_model):
    for feed in decode_steps():
        assert_parity(coreml_model, *feed)


@pytest.mark.coreml(package="frozen.mlpackage")
def test_frozen(coreml_model):
    for feed in decode_steps():
        assert_parity(coreml_model, *feed)
'''


def test_packages_with_and_without_states(stateful: pytest.Pytester, run: Any) -> None:
    import coremltools as ct
    import numpy as np
    import torch

    from pytest_coreml_parity.convert import quiet_conversion

    namespace: dict[str, Any] = {}
    exec(MODELS, namespace)
    example = namespace["decode_steps"](1)[0]
    inputs = [ct.TensorType(name=n, shape=x.shape) for n, x in zip(("x", "pos", "mask"), example, strict=True)]
    states = [
        ct.StateType(wrapped_type=ct.TensorType(shape=(8, 16), dtype=np.float16), name=name)
        for name in ("k_cache", "v_cache")
    ]
    for name, extra in (("stateful", {"states": states}), ("frozen", {})):
        traced = torch.jit.trace(namespace["KVDecoder"]().eval(), example, check_trace=False)
        with quiet_conversion():
            mlmodel = ct.convert(
                traced, inputs=inputs, minimum_deployment_target=ct.target.iOS18,
                skip_model_load=True, **extra,
            )  # fmt: skip
        mlmodel.save(str(stateful.path / f"{name}.mlpackage"))
    stateful.makepyfile(test_packages=PACKAGES)
    result = run("-v")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*test_stateful[[]pkg:stateful.mlpackage[]] PASSED*"])
    frozen = messages.FROZEN_STATE.format(name="k_cache", shape=(8, 16)).split(":")[0]
    result.stdout.fnmatch_lines([f"E * {frozen}:*"])
