"""The precision table is the one home of per-precision facts: every consumer reads it.

A new compressed precision is one row of ``precisions.TABLE`` plus its test: its name
joins the precision axis, its help text, its preset, its recipe, its conversion at
fp16 with the row's ``ct.optimize.coreml`` steps and its minimum deployment target.
"""

from __future__ import annotations

import pytest

from pytest_coreml_parity import compress, convert, precisions, settings, verdict
from pytest_coreml_parity.plugin import _HELP
from pytest_coreml_parity.precisions import TABLE, Precision


@pytest.mark.parametrize("row", TABLE, ids=lambda row: row.name)
def test_every_consumer_reads_the_row(row: Precision) -> None:
    assert row.name in settings.ALL_PRECISIONS
    assert (row.name in settings.DEFAULT_PRECISIONS) == row.default
    assert (row.name in settings.PRECISIONS) == ("coreml" in row.stacks)
    assert (row.preset is None) == (row.name not in verdict.PRESETS)
    if row.preset is not None:
        assert dict(row.preset) == {k: v for k, v in vars(verdict.PRESETS[row.name]).items() if k in row.preset}
    assert compress.is_compressed(row.name) == row.compressed
    assert compress.RECIPES.get(row.name) == row.recipe
    if row.minimum_ios is not None:
        assert compress.effective_target("iOS15", row.name) == f"iOS{max(15, row.minimum_ios)}"
    if row.compressed and not row.user_config and "coreml" in row.stacks:
        assert row.name in _HELP["precisions"][1]
        assert row.name in settings.COMPRESSED_PRECISIONS


def test_a_new_compressed_precision_is_one_row(monkeypatch: pytest.MonkeyPatch) -> None:
    """A row (8-bit palettization here) is compressed with its own steps, converted at
    fp16 and raised to its minimum target, with no other edit."""
    ct = pytest.importorskip("coremltools")
    row = Precision(
        "palettize8", "fp16", {"rtol": 5e-2, "atol": 1e-5, "scale_atol": 0.2, "min_snr": 20.0},
        recipe="weights 8-bit k-means LUT",
        steps=lambda cto: [
            ("palettize_weights", cto.OptimizationConfig(global_config=cto.OpPalettizerConfig(nbits=8, mode="kmeans")))
        ],
        minimum_ios=16,
    )  # fmt: skip
    monkeypatch.setitem(precisions.PRECISIONS, row.name, row)
    assert compress.is_compressed("palettize8")
    ((function, config),) = compress.builtin_configs("palettize8")
    assert function == "palettize_weights" and config.global_config.nbits == 8
    assert compress.effective_target("macOS12", "palettize8") == "macOS13"
    options = convert.ConversionOptions(precision="palettize8")
    assert convert.compute_precision(ct, options) == ct.precision.FLOAT16


def test_an_unknown_precision_has_no_recipe() -> None:
    from pytest_coreml_parity.errors import SettingError

    with pytest.raises(SettingError, match="mixed"):
        compress.builtin_configs("mixed")


def test_no_precision_name_is_compared_in_the_pipeline() -> None:
    """Model, conversion, cache, comparison, runners, settings, verdict, compression, the
    plugin, the stacks and diagnosis ask the table (``is_exact``, a row's flags)."""
    import re
    from pathlib import Path

    names = "|".join(row.name for row in TABLE)
    compared = re.compile(rf"""(==|!=)\s*["']({names})["']""")
    src = Path(precisions.__file__).parent
    files = [*src.glob("*.py"), *src.glob("stacks/**/*.py"), *src.glob("diagnose/*.py")]
    found = [
        f"{path.name}:{number}: {line.strip()}"
        for path in files
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if compared.search(line) and "input_dtypes" not in line
    ]
    assert found == []
