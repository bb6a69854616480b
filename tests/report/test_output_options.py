"""Bad CI-output paths fail before the run, naming the option; --coreml-report is a file."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_coreml_parity import messages

TEST = "def test_nothing():\n    pass\n"


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--coreml-report=reports/"], "--coreml-report: takes the session's JSON report file"),
        (["--coreml-report=report.txt"], "moved to --coreml-report-dir"),
        (["--coreml-report=afile/r.json"], "'afile' is not a directory"),
        (["--coreml-report=adir.json"], "is a directory; give a file path"),
        (["--coreml-summary=adir.json"], "--coreml-summary: 'adir.json' is a directory"),
        (["--coreml-dump=afile"], "--coreml-dump: 'afile' is a file; give a directory"),
        (["--coreml-report-dir=afile"], "--coreml-report-dir: 'afile' is a file"),
        (["--coreml-dump-max-mb=-1"], "--coreml-dump-max-mb: dump size (MB) must be"),
    ],
)
def test_bad_output_paths_are_usage_errors(pytester: pytest.Pytester, args: list[str], says: str) -> None:
    pytester.makepyfile(test_x=TEST)
    (pytester.path / "afile").write_text("x")
    (pytester.path / "adir.json").mkdir()
    result = pytester.runpytest_subprocess(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert says in result.stderr.str(), result.stderr.str()
    assert not (pytester.path / "reports").exists()


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
def test_a_place_no_file_can_be_created_in_is_a_usage_error_even_for_root(pytester: pytest.Pytester) -> None:
    """os.access says /proc is writable to root; creating the report there failed at the end."""
    pytester.makepyfile(test_x=TEST)
    result = pytester.runpytest_subprocess("--coreml-report=/proc/r.json")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "--coreml-report: cannot write '/proc/r.json'" in result.stderr.str(), result.stderr.str()


def test_a_bad_ini_path_names_the_ini_key(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_x=TEST)
    pytester.makeini("[pytest]\ncoreml_report = reports\n")
    result = pytester.runpytest_subprocess()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*ini coreml_report (--coreml-report)*takes the session's JSON report file*"])


def test_coreml_report_json_is_a_file_even_without_parity_tests(pytester: pytest.Pytester) -> None:
    """Not a folder named r.json (argparse prefix matching must not route it elsewhere)."""
    pytester.makepyfile(test_x=TEST)
    result = pytester.runpytest_subprocess("--coreml-report=out/r.json", "--coreml-summary=out/s.md")
    result.assert_outcomes(passed=1)
    report = Path(pytester.path / "out" / "r.json")
    assert report.is_file() and '"format": "pytest-coreml-parity-report"' in report.read_text()
    assert (pytester.path / "out" / "s.md").read_text().startswith(f"## {messages.SUMMARY_TITLE}")
