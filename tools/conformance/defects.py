"""coremltools op tests that fail because of coremltools itself, with the proof.

A wrong hard-coded expected value, or a converter that writes an ill-typed
program. A test lands in the ``upstream-defect`` category only if its id
matches and its failure shows the documented symptom; anything else about it is
judged as usual. Each entry says why coremltools, not the emulator, is at
fault, so a reader can check the claim without a Mac.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class UpstreamDefect:
    """One known upstream defect: which tests, the failure it causes, and why."""

    nodeid_pattern: str
    symptom: str
    reason: str

    __test__ = False  # not a pytest test class, despite the name

    def matches(self, nodeid: str, error: str) -> bool:
        return re.search(self.nodeid_pattern, nodeid) is not None and self.symptom in error


_CROP_RESIZE_7_899 = (
    "hard-coded expected value 7.899 for the sample at row 1.5, column 0.9 of the 4x4 "
    "ramp x[r, c] = 1 + 4r + c, where bilinear interpolation is exactly 1 + 6 + 0.9 = 7.9 "
    "(the other 11 values of the same tensor, e.g. 13.9 = 1 + 12 + 0.9, match exact "
    "arithmetic); off by 1e-3 at atol 1e-4, so no float32 implementation can pass it. "
    "It passes coremltools' fp16 tolerance, the only one its CI applies."
)

_BATCH_NORM_ILL_TYPED = (
    "ill-typed program from the converter: for an fp16 input below iOS16 coremltools "
    "changes the input to fp32 and, as its own warning says, does so 'without inserting "
    "any cast op', so an fp32 x meets fp16 mean/variance in batch_norm; MIL's type check "
    "rejects that program when it is read back from the saved model."
)

KNOWN_UPSTREAM_DEFECTS: tuple[UpstreamDefect, ...] = (
    UpstreamDefect(
        r"^iOS1[47]/test_normalization\.py::TestNormalizationBatchNorm::test_builder_to_backend_smoke\[.*precision='fp32'",
        "must have the same data type as the named input",
        _BATCH_NORM_ILL_TYPED,
    ),
    UpstreamDefect(
        r"^iOS16/test_image_resizing\.py::TestCropResize::test_builder_to_backend_ios16\[.*precision='fp32'",
        "Mismatched elements: 1 / 12",
        _CROP_RESIZE_7_899,
    ),
    UpstreamDefect(
        r"^iOS17/test_image_resizing\.py::TestCropResize::test_builder_to_backend_ios17\[.*precision='fp32'.*-N=3\]",
        "Mismatched elements: 1 / 12",
        _CROP_RESIZE_7_899,
    ),
)


def known_defect(nodeid: str, error: str) -> UpstreamDefect | None:
    """The documented defect this failure is, or None."""
    return next((d for d in KNOWN_UPSTREAM_DEFECTS if d.matches(nodeid, error)), None)
