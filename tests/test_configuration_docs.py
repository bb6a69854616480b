"""docs/configuration.md documents every marker keyword, option and ini key exactly once,
with the stacks each applies to, checked against the code's own tables."""

from __future__ import annotations

import re
from pathlib import Path

from pytest_coreml_parity.applies import only, stacks_of
from pytest_coreml_parity.settings import MARKER_KEYWORDS, OPTIONS

DOC = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"


def _rows() -> list[list[str]]:
    text = DOC.read_text()
    table = text[text.index("| Setting | Marker keyword |") :].split("\n\n", 1)[0]
    return [line.split(" | ") for line in table.splitlines()[2:]]


def _setting(cells: list[str]) -> str:
    marker = re.search(r"`(\w+)=", cells[1])
    if marker:
        return marker.group(1)
    flag = re.search(r"`(--coreml-[\w-]+)", cells[2])
    assert flag, cells
    return next(name for name, (f, _ini, _parse) in OPTIONS.items() if f == flag.group(1))


def test_every_keyword_option_and_ini_key_is_documented_once() -> None:
    rows = _rows()
    names = [_setting(cells) for cells in rows]
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)
    by_name = dict(zip(names, rows, strict=True))
    for keyword in MARKER_KEYWORDS:
        assert keyword in by_name, f"marker keyword {keyword!r} is not in docs/configuration.md"
        assert f"`{keyword}=" in by_name[keyword][1], keyword
    for name, (flag, ini, _parse) in OPTIONS.items():
        assert name in by_name, f"option {flag} is not in docs/configuration.md"
        assert f"`{flag}" in by_name[name][2], (name, flag)
        assert f"`{ini}" in by_name[name][3], (name, ini)
    documented = set(by_name)
    assert documented <= set(MARKER_KEYWORDS) | set(OPTIONS), documented - set(MARKER_KEYWORDS) - set(OPTIONS)


def test_every_row_names_the_stacks_it_applies_to() -> None:
    for cells in _rows():
        name = _setting(cells)
        stacks = cells[-1].strip(" |")
        assert stacks == ", ".join(stacks_of(name)), (name, stacks)


def test_the_stack_table_names_only_real_settings_and_fixtures() -> None:
    fixtures = {"coreml_convert", "coreml_convert_kwargs", "torch_preprocess"}
    assert set(only()) <= set(MARKER_KEYWORDS) | set(OPTIONS) | fixtures


def test_the_registered_marker_signature_lists_every_keyword() -> None:
    from pytest_coreml_parity.settings import MARKER_SIGNATURE

    listed = re.findall(r"(\w+)=None", MARKER_SIGNATURE)
    assert sorted(listed) == sorted(MARKER_KEYWORDS)
