"""CI outputs end to end: JUnit text and properties, the JSON report and its schema, the
summary, golden dumps and their replay on Linux, serially and under xdist (real
conversions, the real emulator)."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from pytest_coreml_parity import messages
from pytest_coreml_parity.errors import DumpError
from pytest_coreml_parity.replay import main as replay_main
from pytest_coreml_parity.report.dump import ARRAYS, MANIFEST, PACKAGE, PACKAGES
from pytest_coreml_parity.report.replay import load_dump
from pytest_coreml_parity.report.session import load_schema

from .project import NORM_LINE, make_project, run
from .schema_check import errors

DOC = Path(__file__).resolve().parents[2] / "docs" / "ci.md"
PARITY = "test_complex.py::test_parity[fp16]"
NORM = "test_norm.py::test_norm_large[fp16]"
HEALTHY = "test_complex.py::test_healthy[fp16]"


def doc_command() -> list[str]:
    """The Linux job's pytest line from docs/ci.md's ``sh`` block, as written."""
    block = re.search(r"```sh\n(python -m pytest [^\n]*)\n```", DOC.read_text())
    assert block is not None, "docs/ci.md lost its Linux job command block"
    return shlex.split(block.group(1))


class Session:
    def __init__(self, path: Path, result: subprocess.CompletedProcess[str]) -> None:
        self.path, self.result = path, result
        self.out = result.stdout + result.stderr
        self.results = path / "results"

    def report(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.results / "coreml-report.json").read_text())
        return data

    def tests(self) -> dict[str, dict[str, Any]]:
        return {t["nodeid"]: t for t in self.report()["tests"]}

    def junit(self) -> dict[str, ET.Element]:
        root = ET.parse(self.results / "junit.xml").getroot()
        return {f"{c.get('classname')}::{c.get('name')}": c for c in root.iter("testcase")}


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def serial(tmp_path_factory: pytest.TempPathFactory, cache: Path) -> Session:
    """The doc's command without ``-n auto``: one process."""
    path = make_project(tmp_path_factory.mktemp("serial"), cache)
    args = [a for a in doc_command()[3:] if a not in ("-n", "auto")]
    return Session(path, run(path, args))


@pytest.fixture(scope="module")
def xdist(tmp_path_factory: pytest.TempPathFactory, cache: Path, serial: Session) -> Session:
    """docs/ci.md's Linux job command, as written (``-n auto``, pinned to 2 workers)."""
    path = make_project(tmp_path_factory.mktemp("xdist"), cache)
    args = doc_command()
    assert args[:3] == ["python", "-m", "pytest"]
    return Session(path, run(path, args[3:], PYTEST_XDIST_AUTO_NUM_WORKERS="2"))


def test_the_session_ran_as_expected(serial: Session) -> None:
    assert serial.result.returncode == 1, serial.out
    assert re.search(r"2 failed, 3 passed, 2 skipped", serial.out), serial.out


def test_junit_failure_text_names_the_op_the_torch_line_and_the_fix(serial: Session) -> None:
    cases = serial.junit()
    tests = serial.tests()
    for nodeid, line in ((PARITY, "den = rb * rb + ib * ib"), (NORM, NORM_LINE)):
        failure = cases[nodeid.replace(".py::", "::").replace("/", ".")].find("failure")
        assert failure is not None and failure.text is not None
        text = failure.text
        diagnosis = tests[nodeid]["diagnosis"]
        assert re.search(rf"^-+ {re.escape(messages.DIAGNOSIS_SECTION)} -+$", text, re.M)
        assert f"{diagnosis['op_type']} {diagnosis['op']}" in text  # the op
        assert line in text and line in diagnosis["source"]  # the torch line
        assert "compute_precision=ct.precision.FLOAT32" in text  # the fix
        assert "float16 overflow" in text
        assert f" {messages.PROFILES_SECTION} " in text and "float32 " in text  # which profiles agree


def test_junit_properties_carry_the_metrics(serial: Session) -> None:
    cases = serial.junit()
    props = {p.get("name"): p.get("value") for p in cases["test_complex::test_healthy[fp16]"].iter("property")}
    assert props["coreml.precision"] == "fp16" and props["coreml.stack"] == "coreml"
    assert props["coreml.runner"] == "emulator" and props["coreml.profile"] == "typed"
    assert props["coreml.verdict"] == "pass"
    for key in ("snr", "cosine", "max_abs", "max_rel", "headroom", "conversion"):
        assert f"coreml.{key}" in props
    failed = {p.get("name"): p.get("value") for p in cases["test_complex::test_parity[fp16]"].iter("property")}
    assert failed["coreml.verdict"] == "fail" and failed["coreml.failed_gates"] == "elements"
    assert failed["coreml.headroom"] == "0"  # the overflowing mul


def _check_report(session: Session) -> dict[str, dict[str, Any]]:
    report = session.report()
    assert errors(report, load_schema()) == []
    tests = session.tests()
    assert report["totals"] == {
        "tests": 7, "passed": 3, "failed": 2, "skipped": 2, "error": 0, "xfailed": 0, "xpassed": 0,
    }  # fmt: skip
    assert tests["test_complex.py::test_plain"]["model"] is None
    assert tests["test_complex.py::test_skipped[fp32]"]["outcome"] == "skipped"
    for nodeid in (PARITY, NORM, HEALTHY, "test_complex.py::test_healthy[fp32]"):
        t = tests[nodeid]
        assert t["stack"] == "coreml" and t["runner"] == "emulator" and t["calls"] == 1
        assert t["conversion"]["event"] in ("converted", "disk", "memory")
        assert t["conversion"]["seconds"] >= 0
        (output,) = t["outputs"]
        assert output["verdict"] == ("fail" if nodeid in (PARITY, NORM) else "pass")
        assert output["gates"]["rtol"] > 0
        assert t["dump"]["path"] and t["dump"]["package"] == "copy"
    assert tests[PARITY]["diagnosis"]["hint_kind"] == "overflow"
    assert tests[PARITY]["diagnosis"]["op_type"] == "mul"
    assert tests[PARITY]["headroom"]["min_margin"] == 0
    assert tests[HEALTHY]["headroom"]["min_margin"] > 1000
    assert tests[PARITY]["outputs"][0]["failed_gates"] == ["elements"]
    # one copy per distinct package: test_parity[fp16] and test_healthy[fp16] ran the same one
    dumps = session.results / "dumps"
    packages = {t: _manifest(dumps, tests[t])["package"]["path"] for t in (PARITY, HEALTHY, NORM)}
    assert packages[PARITY] == packages[HEALTHY] != packages[NORM]
    assert packages[PARITY].startswith(f"../{PACKAGES}/") and packages[PARITY].endswith(f"/{PACKAGE}")
    assert len(list((dumps / PACKAGES).iterdir())) == 3  # ComplexDiv fp16 and fp32, Norm fp16
    on_disk = sum(p.stat().st_size for p in dumps.rglob("*") if p.is_file() and not p.name.startswith((".", "index")))
    assert sum(t["dump"]["bytes"] for t in tests.values() if t["dump"]) == on_disk  # each package counted once
    fix = tests[PARITY]["diagnosis"]["fix"]  # the advice, without the label or the torch line it repeats
    assert not fix.startswith("hint:") and "FLOAT32" in fix and tests[PARITY]["diagnosis"]["source"] not in fix
    profiles = {p["profile"]: p["passed"] for p in tests[PARITY]["profiles"]}  # per-profile verdicts
    assert profiles == {"typed": False, "fp16-sequential": False, "float32": True}
    assert tests[HEALTHY]["profiles"] is None and tests[HEALTHY]["lint"] == [] and tests[HEALTHY]["weights"] is None
    return tests


def _manifest(dumps: Path, test: dict[str, Any]) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((dumps / test["dump"]["path"] / MANIFEST).read_text())
    return data


def test_report_validates_against_its_schema_and_records_every_test(serial: Session) -> None:
    assert (serial.results / "coreml-report.json").is_file()
    _check_report(serial)


def test_report_under_xdist_is_the_serial_report(xdist: Session, serial: Session) -> None:
    assert xdist.result.returncode == 1, xdist.out
    assert "2 workers" in xdist.out, xdist.out
    tests = _check_report(xdist)

    def key(t: dict[str, Any]) -> Any:
        return t["outcome"], [(o["output"], o["verdict"], o["failed_gates"]) for o in t["outputs"]], t["diagnosis"]

    assert {k: key(v) for k, v in tests.items()} == {k: key(v) for k, v in serial.tests().items()}
    failure = xdist.junit()["test_complex::test_parity[fp16]"].find("failure")
    assert failure is not None and failure.text is not None  # the diagnosis crossed from a worker
    assert "den = rb * rb + ib * ib" in failure.text and "ct.precision.FLOAT32" in failure.text
    index = json.loads((xdist.results / "dumps" / "index.json").read_text())
    assert len(index["dumps"]) == 4


def test_summary_lists_failures_with_op_line_and_fix(serial: Session) -> None:
    text = (serial.results / "coreml-summary.md").read_text()
    assert text.startswith(f"## {messages.SUMMARY_TITLE}")
    tests = serial.tests()
    for nodeid in (PARITY, NORM):
        d = tests[nodeid]["diagnosis"]
        row = next(line for line in text.splitlines() if nodeid in line and line.startswith("|"))
        assert f"`{d['op_type']} {d['op']}`" in row and "FLOAT32" in row
        assert d["source"].split(": ", 1)[-1].replace("|", "\\|")[:30] in row
    assert "### Worst headroom" in text and "overflowed" in text


def test_replay_on_linux_reproduces_every_dumped_verdict(serial: Session, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    output = tmp_path / "replay.json"
    assert replay_main([str(serial.results / "dumps"), "--output", str(output)]) == 0
    report = json.loads(output.read_text())
    by_id = {d["nodeid"]: d for d in report["dumps"]}
    assert set(by_id) == {PARITY, NORM, HEALTHY, "test_complex.py::test_healthy[fp32]"}
    for nodeid, dumped in by_id.items():
        own = next(r for r in dumped["runs"] if r["runner"] == "emulator:typed")
        assert own["matches_dump"] is True
        assert own["verdict"] == dumped["dumped_verdict"] == ("fail" if nodeid in (PARITY, NORM) else "pass")
        assert own["vs_dump"]["identical"] == 1.0  # the emulator is deterministic
        assert {r["runner"] for r in dumped["runs"]} == {"emulator:typed", "emulator:float32", "emulator:fp16-sequential"}
        assert dumped["fidelity"][0]["unit"] == "dumped:emulator" and dumped["fidelity"][0]["closest"] == "typed"
    # float32 intermediates do not overflow: that profile passes the fp16 overflow
    assert next(r for r in by_id[PARITY]["runs"] if r["runner"] == "emulator:float32")["verdict"] == "pass"
    assert "elementwise arithmetic" in by_id[PARITY]["op_families"]
    rows = {(r["op_family"], r["unit"]) for r in report["fidelity"]}
    assert ("elementwise arithmetic", "dumped:emulator") in rows
    assert "matches the dump" in capsys.readouterr().out


def _damage(folder: Path, how: str) -> str:
    """Damage a copied dump; return what the error must say."""
    dump = next(p for p in folder.iterdir() if p.is_dir() and p.name != PACKAGES)
    manifest = json.loads((dump / MANIFEST).read_text())
    if how == "no-manifest":
        (dump / MANIFEST).unlink()
        return "no dumps found"
    if how == "foreign":
        (dump / MANIFEST).write_text(json.dumps({"format": "something-else"}))
        return "is not a pytest-coreml-parity dump manifest"
    if how == "garbled-json":
        (dump / MANIFEST).write_text("{not json")
        return "unreadable JSON"
    if how == "newer-version":
        (dump / MANIFEST).write_text(json.dumps({**manifest, "version": 99}))
        return "format version 99 is not supported"
    if how == "truncated-arrays":
        data = (dump / ARRAYS).read_bytes()
        (dump / ARRAYS).write_bytes(data[: len(data) // 2])
        return "arrays.npz fails its size or sha256"
    if how == "missing-package-file":
        shutil.rmtree(dump / manifest["package"]["path"])  # the shared ../packages/<sha256>/model.mlpackage
        return "is missing"
    if how == "dangling-pointer":
        manifest["package"] = {"kind": "cache", "path": str(folder / "gone" / "model.mlpackage")}
        (dump / MANIFEST).write_text(json.dumps(manifest))
        return "is gone"
    if how == "not-a-folder":
        return "not a pytest-coreml-parity dump"
    raise AssertionError(how)


@pytest.mark.parametrize(
    "how",
    ["no-manifest", "foreign", "garbled-json", "newer-version", "truncated-arrays",
     "missing-package-file", "dangling-pointer", "not-a-folder"],
)  # fmt: skip
def test_replay_rejects_unusable_dump_folders_with_a_clear_error(
    serial: Session, tmp_path: Path, how: str, capsys: pytest.CaptureFixture[str]
) -> None:
    copy = tmp_path / "dumps"
    source = serial.results / "dumps" / "test_complex.py_test_healthy_fp16"
    shutil.copytree(source, copy / source.name)
    shutil.copytree(serial.results / "dumps" / PACKAGES, copy / PACKAGES)
    expected = _damage(copy, how)
    target = copy / "missing-folder" if how == "not-a-folder" else copy
    assert replay_main([str(target)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("replay: ") and expected in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    if how not in ("no-manifest", "not-a-folder"):
        with pytest.raises(DumpError, match=re.escape(expected)):
            load_dump(copy / source.name)


def test_dump_size_bound_points_into_the_cache_then_skips(tmp_path: Path, cache: Path, serial: Session) -> None:
    """Past the bound a package becomes a pointer into the disk cache; past that, no dump."""
    path = make_project(tmp_path / "p", cache)
    args = ["-k", "healthy", "--coreml-dump=d", "--coreml-dump-max-mb=0.0015", "--coreml-report=r.json"]
    result = run(path, args)
    assert result.returncode == 0, result.stdout + result.stderr
    tests = {t["nodeid"]: t for t in json.loads((path / "r.json").read_text())["tests"]}
    first, second = tests["test_complex.py::test_healthy[fp32]"], tests[HEALTHY]
    assert first["dump"]["package"] == "cache" and first["dump"]["path"]
    manifest = json.loads((path / "d" / first["dump"]["path"] / MANIFEST).read_text())
    assert Path(manifest["package"]["path"]).is_relative_to(cache)
    assert second["dump"]["path"] is None and "exceed --coreml-dump-max-mb=0.0015" in second["dump"]["note"]
    index = json.loads((path / "d" / "index.json").read_text())
    assert [d["nodeid"] for d in index["dumps"]] == [first["nodeid"]]
    assert replay_main([str(path / "d"), "--output", str(tmp_path / "replay.json")]) == 0


def test_replay_skips_a_dump_pointing_into_a_cache_this_machine_lacks(
    serial: Session, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A Mac job has no Linux disk cache: a dump past the size bound is skipped, not fatal."""
    copy = tmp_path / "dumps"
    shutil.copytree(serial.results / "dumps", copy)
    folder = copy / serial.tests()[NORM]["dump"]["path"]
    manifest = json.loads((folder / MANIFEST).read_text())
    manifest["package"] = {"kind": "cache", "path": str(tmp_path / "linux-cache" / PACKAGE)}
    (folder / MANIFEST).write_text(json.dumps(manifest))
    output = tmp_path / "replay.json"
    assert replay_main([str(copy), "--output", str(output)]) == 0
    report = json.loads(output.read_text())
    assert NORM not in {d["nodeid"] for d in report["dumps"]} and len(report["dumps"]) == 3
    (skipped,) = report["skipped"]
    assert skipped["path"] == str(folder) and "raise the bound" in skipped["why"]
    assert "skipped: " in capsys.readouterr().out


def test_doc_jobs_run_the_same_pytest_line() -> None:
    """GitHub's and GitLab's Linux jobs in docs/ci.md run the command the test runs."""
    text = DOC.read_text()
    line = " ".join(doc_command())
    assert text.count(line) == 3  # the sh block, the GitHub step, the GitLab script


def test_coreai_dumps_replay_on_the_core_ai_interpreter(tmp_path: Path, cache: Path) -> None:
    """A coreai dump holds the saved program and replays through Apple's interpreter."""
    from pytest_coreml_parity.coreai.availability import coreai_unavailable_reason

    reason = coreai_unavailable_reason(deep=True)
    if reason is not None:
        pytest.skip(reason)
    path = make_project(tmp_path / "p", cache)
    args = ["test_complex.py", "-k", "parity or healthy", "--coreml-targets=coreai", "--coreml-precisions=fp16",
            "--coreml-dump=d", "--coreml-report=r.json"]  # fmt: skip
    result = run(path, args)
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    tests = {t["nodeid"]: t for t in json.loads((path / "r.json").read_text())["tests"] if t["model"]}
    assert {t["stack"] for t in tests.values()} == {"coreai"}
    assert all(t["dump"]["package"] == "copy" for t in tests.values())
    output = tmp_path / "replay.json"
    assert replay_main([str(path / "d"), "--output", str(output)]) == 0
    report = json.loads(output.read_text())
    assert len(report["dumps"]) == 2
    for dumped in report["dumps"]:
        (run_,) = dumped["runs"]
        assert run_["runner"] == "coreai-interpreter" and run_["matches_dump"] is True
        assert run_["vs_dump"]["identical"] == 1.0
        expected = "fail" if "test_parity" in dumped["nodeid"] else "pass"
        assert run_["verdict"] == dumped["dumped_verdict"] == expected
