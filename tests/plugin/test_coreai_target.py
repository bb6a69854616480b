"""The coreai target in the plugin: ids, settings, skips, verdict, diagnosis, cache, isolation.

Real conversions (coreai-torch) and the real interpreter (coreai-core, in its worker).
Runs that do not test caching share the session's disk cache. Tests that need Core AI
skip with coreai_unavailable_reason() where it cannot run.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from pytest_coreml_parity import messages
from pytest_coreml_parity.coreai.availability import coreai_unavailable_reason
from pytest_coreml_parity.settings import parametrize_ids

from .conftest import EXAMPLE_DIR, SCALE_CONFTEST, copy_example

REASON = coreai_unavailable_reason(deep=True)
needs_coreai = pytest.mark.skipif(REASON is not None, reason=f"Core AI unavailable: {REASON}")
COREAI = "--coreml-targets=coreai"


@pytest.fixture(scope="module", autouse=True)
def _warm_up_coreai() -> None:
    """Import and run everything a coreai conversion touches, before in-process pytester runs.

    Pytester drops modules first imported during a run; re-importing coreai's or torchao's
    native extensions afterwards is not safe. One conversion here imports them all.
    """
    if REASON is not None:
        return
    import pytest_coreml_parity.diagnose.coreai  # noqa: F401
    from pytest_coreml_parity.coreai import convert_for_coreai, first_nonfinite_op, record

    model = torch.nn.Linear(2, 2).eval()
    program = convert_for_coreai(model, (torch.ones(1, 2),), "fp16")
    first_nonfinite_op(record(program, (np.ones((1, 2), np.float32),)))


# ------------------------------------------------------------------ ids and settings


def test_ids_stay_precisions_with_only_the_default_target() -> None:
    assert parametrize_ids(("coreml",), ("fp32", "fp16")) == ["fp32", "fp16"]
    assert parametrize_ids(("coreml", "coreai"), ("fp32", "fp16")) == [
        "coreml-fp32", "coreml-fp16", "coreai-fp32", "coreai-fp16",
    ]  # fmt: skip
    assert parametrize_ids(("coreai",), ("fp16",)) == ["coreai-fp16"]


def test_targets_from_cli_ini_and_marker(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(SCALE_CONFTEST)
    pytester.makeini("[pytest]\ncoreml_targets = coreai\n")
    pytester.makepyfile(
        """
        import pytest

        def test_plain(coreml_model):
            pass

        @pytest.mark.coreml(targets=["coreml"], precisions=["fp16"])
        def test_marked(coreml_model):
            pass
        """
    )
    ini = pytester.runpytest("-p", "no:cacheprovider", "--collect-only", "-q")
    # the marker beats the ini; a test on the default target alone keeps plain ids
    ini.stdout.fnmatch_lines(
        ["*test_plain[[]coreai-fp32[]]", "*test_plain[[]coreai-fp16[]]", "*test_marked[[]fp16[]]"]
    )
    cli = pytester.runpytest("-p", "no:cacheprovider", "--collect-only", "-q", "--coreml-targets=coreml")
    cli.stdout.fnmatch_lines(["*test_plain[[]fp32[]]", "*test_plain[[]fp16[]]", "*test_marked[[]fp16[]]"])


@pytest.mark.parametrize(
    ("args", "ini", "where"),
    [
        (["--coreml-targets=coreai,tflite"], "", "--coreml-targets"),
        ([], "coreml_targets = coreml, metal\n", "coreml_targets"),
    ],
)
def test_bad_targets_name_their_source(
    pytester: pytest.Pytester, args: list[str], ini: str, where: str
) -> None:
    pytester.makeini("[pytest]\n" + ini)
    pytester.makepyfile("def test_x(): pass")
    result = pytester.runpytest("-p", "no:cacheprovider", *args)
    bad = "tflite" if args else "metal"
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{where}*unknown target '{bad}' (known: coreml, coreai)*"])


def test_bad_marker_targets_fail_collection(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(SCALE_CONFTEST)
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.coreml(targets=["coreai", "onnx"])
        def test_x(coreml_model):
            pass
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(["*@pytest.mark.coreml in *test_x*: targets*unknown target 'onnx'*"])
    result.assert_outcomes(errors=1)


def test_precisions_a_target_cannot_run_skip_with_a_reason(run: Any, pytester: pytest.Pytester) -> None:
    pytester.makeconftest(SCALE_CONFTEST)
    pytester.makepyfile("def test_x(coreml_model):\n    pass\n")
    result = run(
        "--coreml-targets=coreml,coreai", "--coreml-precisions=int8,mixed", "-rs",
        "-k", "coreml-mixed or coreai-int8",
    )  # fmt: skip
    result.assert_outcomes(skipped=2)
    int8 = messages.COREAI_PRECISION_UNSUPPORTED.format(precision="int8", known="fp32, fp16, mixed")
    mixed = messages.COREML_PRECISION_UNSUPPORTED.format(precision="mixed")
    result.stdout.fnmatch_lines_random([f"*{int8}*", f"*{mixed}*"])


# ------------------------------------------------------------------ availability


def test_without_coreai_installed_the_target_skips_naming_the_cause(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, shared_cache: Path
) -> None:
    """A sitecustomize shim makes coreai look uninstalled (its imports fail), in a subprocess."""
    shim = pytester.mkdir("shim")
    shim.joinpath("sitecustomize.py").write_text(
        "import sys\nsys.modules.update(dict.fromkeys(('coreai', 'coreai_torch', 'coreai_opt')))\n"
    )
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(shim), os.environ.get("PYTHONPATH", "")]))
    pytester.makeconftest(SCALE_CONFTEST)
    pytester.makepyfile("def test_x(coreml_model):\n    pass\n")
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", f"--coreml-cache-dir={shared_cache}",
        "--coreml-targets=coreml,coreai", "--coreml-precisions=fp32", "-rs",
    )  # fmt: skip
    result.assert_outcomes(passed=1, skipped=1)
    reason = messages.COREAI_UNAVAILABLE.format(reason="coreai-core, coreai-torch, coreai-opt not installed")
    result.stdout.fnmatch_lines(["*UNAVAILABLE*not installed*coreai tests skip*", f"*{reason}*"])


# ------------------------------------------------------------------ the seed scenario


@needs_coreai
def test_complex_division_passes_at_fp32_and_fails_at_fp16_naming_op_and_line(
    run: Any, pytester: pytest.Pytester
) -> None:
    copy_example(pytester)
    result = run(COREAI, "-k", "test_parity or test_large_denominators", "-v")
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*test_parity[[]coreai-fp32[]] PASSED*",
            "*test_parity[[]coreai-fp16[]] PASSED*",
            "*test_large_denominators[[]coreai-fp32[]] PASSED*",
            "*test_large_denominators[[]coreai-fp16[]] FAILED*",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "*" + messages.COREAI_PARITY_HEADER.format(
                output="'cat'", precision="fp16", backend="coreai-interpreter"
            ) + "*",
            "*" + messages.COREAI_NONFINITE + "*",
            f"*{messages.DIAGNOSIS_SECTION}*",
            "*first non-finite op: mul (coreai.decomposable.broadcasting_mul, from aten.mul.Tensor)*",
            "*torch source: *conftest.py:*: den = rb * rb + ib * ib",
            f"*{messages.COREAI_SEARCH_FIX_HINT}*",
        ]
    )
    result.stdout.fnmatch_lines(["*coreml-parity: targets coreai; coreai: coreai-core *, backend coreai-*"])


@needs_coreai
def test_search_fix_finds_ignored_ops_and_the_snippet_runs(run: Any, pytester: pytest.Pytester) -> None:
    copy_example(pytester)
    result = run(COREAI, "--coreml-precisions=fp16", "--coreml-search-fix", "-k", "test_large_denominators")
    result.assert_outcomes(failed=1)
    text = result.stdout.str()
    assert "mixed precision fix (verified" in text, text
    start = text.index("FP32_OPS = ")
    snippet = text[start : text.index("to_coreai()", start) + len("to_coreai()")]
    import importlib.util

    import coreai_opt.casting
    import coreai_torch

    spec = importlib.util.spec_from_file_location("complex_division_conftest", EXAMPLE_DIR / "conftest.py")
    assert spec is not None and spec.loader is not None
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    scope: dict[str, Any] = {
        "torch": torch, "coreai_torch": coreai_torch, "coreai_opt": coreai_opt,
        "model": example.ComplexDiv().eval(), "example_inputs": (torch.rand(8, 4) + 0.5,),
    }  # fmt: skip
    from pytest_coreml_parity.coreai.availability import quiet_coreai_warnings

    with quiet_coreai_warnings():  # coreai-torch's own deprecation warnings, as in the product
        exec(snippet, scope)  # the paste-ready snippet converts as printed
    assert scope["FP32_OPS"] == {"add", "div", "mul", "sub"}
    kept = [
        n for n in scope["ep"].graph.nodes
        if n.op == "call_function" and getattr(n.target, "_opname", None) in scope["FP32_OPS"]
    ]  # fmt: skip
    assert kept and all(n.meta["val"].dtype == torch.float32 for n in kept)
    assert scope["program"] is not None


@needs_coreai
def test_mixed_precision_passes_the_large_denominators(run: Any, pytester: pytest.Pytester) -> None:
    copy_example(pytester)
    result = run(COREAI, "--coreml-precisions=mixed", "-k", "test_large_denominators", "-v")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*test_large_denominators[[]coreai-mixed[]] PASSED*"])


# ------------------------------------------------------------------ real architectures

ARCHITECTURES = '''
import pytest
import torch
from pytest_coreml_parity import assert_parity
from tests.coreai.models import SmallCNN, TransformerBlock, seeded

MODELS = {
    "transformer": (lambda: seeded(TransformerBlock()), (2, 16, 64)),
    "cnn": (lambda: seeded(SmallCNN()), (2, 3, 32, 32)),
}

@pytest.fixture(params=sorted(MODELS))
def which(request):
    return request.param

@pytest.fixture
def torch_model(which):
    return MODELS[which][0]()

@pytest.fixture
def example_inputs(which):
    return (torch.randn(*MODELS[which][1], generator=torch.Generator().manual_seed(0)),)

def test_parity(coreml_model, example_inputs):
    assert_parity(coreml_model, *example_inputs)
'''


@needs_coreai
def test_transformer_block_and_cnn_pass_at_fp32_and_fp16(run: Any, pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_architectures=ARCHITECTURES)
    result = run(COREAI, "-v")
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines_random(
        [f"*test_parity[[]{m}-coreai-{p}[]] PASSED*" for p in ("fp32", "fp16") for m in ("cnn", "transformer")]
    )


# ------------------------------------------------------------------ cache and isolation


@needs_coreai
def test_programs_come_from_the_disk_cache_and_damage_is_rebuilt(
    run: Any, pytester: pytest.Pytester, tmp_path: Path
) -> None:
    pytester.makeconftest(SCALE_CONFTEST)
    pytester.makepyfile(
        "from pytest_coreml_parity import assert_parity\n"
        "def test_x(coreml_model, example_inputs):\n"
        "    assert_parity(coreml_model, *example_inputs)\n"
    )
    cache = tmp_path / "cache"
    args = (f"--coreml-cache-dir={cache}", COREAI, "--coreml-precisions=fp16")
    first = run(*args)
    first.assert_outcomes(passed=1)
    first.stdout.fnmatch_lines(["*1 converted, 0 from disk cache*"])
    second = run(*args)
    second.assert_outcomes(passed=1)
    second.stdout.fnmatch_lines(["*0 converted, 1 from disk cache*"])
    (bytecode,) = cache.glob("coreai-*/program/model.aimodel/main.mlirb")
    bytecode.write_bytes(bytecode.read_bytes()[:-8] + b"garbage!")
    third = run(*args)
    third.assert_outcomes(passed=1)
    third.stdout.fnmatch_lines(["*1 converted*1 cache entry rebuilt (main.mlirb: garbled*"])


@needs_coreai
def test_cache_key_covers_weights_precision_and_fp32_ops() -> None:
    from pytest_coreml_parity.convert import ConversionOptions
    from pytest_coreml_parity.coreai.convert import export_for_coreai
    from pytest_coreml_parity.stacks.coreai.key import program_key

    model = torch.nn.Linear(3, 2).eval()
    x = (torch.ones(1, 3),)

    def key(m: torch.nn.Module, precision: str, ops: frozenset[str] | None = None) -> str:
        options = ConversionOptions(precision=precision, fp32_ops=ops)
        return program_key(export_for_coreai(m, x), m, x, ("input",), options, ops)

    base = key(model, "fp16")
    assert key(model, "fp16") == base  # stable across exports
    assert key(model, "fp32") != base
    assert key(model, "fp16", frozenset({"mul"})) != base
    with torch.no_grad():
        model.bias[0] += 1.0
    assert key(model, "fp16") != base


@needs_coreai
def test_a_worker_crash_or_hang_fails_one_test_and_the_next_test_passes(run: Any, pytester: pytest.Pytester) -> None:
    pytester.makeconftest(SCALE_CONFTEST)
    pytester.makepyfile(
        """
        from pytest_coreml_parity import assert_parity
        from pytest_coreml_parity.coreai import default_worker

        def test_1_crash(coreml_model, example_inputs):
            coreml_model(*example_inputs)
            default_worker().request(("debug", "segfault", None), model="crash test")

        def test_2_next(coreml_model, example_inputs):
            assert_parity(coreml_model, *example_inputs)

        def test_3_hang(coreml_model, example_inputs):
            default_worker().request(("debug", "sleep", 60), model="hang test", timeout=1)

        def test_4_next(coreml_model, example_inputs):
            assert_parity(coreml_model, *example_inputs)
        """
    )
    result = run(COREAI, "--coreml-precisions=fp32", "-v")
    result.assert_outcomes(passed=2, failed=2)
    result.stdout.fnmatch_lines(
        [
            "*test_1_crash*FAILED*",
            "*test_2_next*PASSED*",
            "*test_3_hang*FAILED*",
            "*test_4_next*PASSED*",
        ]
    )
    result.stdout.fnmatch_lines(["*CoreAIRuntimeError*killed by signal SIGSEGV (11)*"])
    result.stdout.fnmatch_lines(["*CoreAITimeoutError*did not answer within 1 s*"])


@needs_coreai
def test_coreai_failure_writes_a_json_report(run: Any, pytester: pytest.Pytester, tmp_path: Path) -> None:
    """--coreml-report-dir DIR on the coreai target: the first non-finite op and its torch line."""
    import json

    copy_example(pytester)
    reports = tmp_path / "reports"
    result = run(
        COREAI, "--coreml-precisions=fp16", f"--coreml-report-dir={reports}", "-k", "test_large_denominators"
    )
    result.assert_outcomes(failed=1)
    (path,) = reports.glob("*.json")
    data = json.loads(path.read_text())
    assert data["target"] == "coreai" and data["precision"] == "fp16"
    op = data["first_nonfinite"]
    assert op["torch_target"] == "aten.mul.Tensor", op
    assert op["source_line"].endswith(":18") and "den = rb * rb + ib * ib" in op["code"], op
    assert data["node_id"].endswith("test_large_denominators[coreai-fp16]")
    result.stdout.fnmatch_lines([f"*{path}*"])  # the section says where the report went
