"""Make ``import torchvision`` (and so ``import timm`` / ``transformers``) work beside CPU torch.

The torchvision wheel on PyPI is a CUDA build. Its ``_C.so`` links ``libc10_cuda.so``,
which a CPU build of torch lacks, so the extension does not load. torchvision 0.28
tolerates that for most ops (their registrations check ``_has_ops()``), but
``_meta_registrations`` registers fake kernels for ``torchvision::nms`` and
``torchvision::qnms`` unconditionally, and that raises ``RuntimeError: operator
torchvision::nms does not exist``. timm imports torchvision at import time, so it
fails too.

:func:`ensure_torchvision_importable` defines those two schemas (no kernel) before
torchvision is imported, only when the extension cannot load. torchvision then
imports, every model builds and runs, and the detection ops fail as they would have
anyway: ``torchvision.ops.nms`` raises torchvision's own "Couldn't load custom C++
ops". When the extension loads (a CPU build of torchvision), nothing is defined.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

#: The ops torchvision registers fake kernels for whether or not its extension loaded
#: (their schemas, copied from torchvision's csrc/ops/nms.cpp).
UNGUARDED_SCHEMAS: dict[str, str] = {
    "nms": "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms": "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
}

#: The library that holds the placeholder schemas; kept alive for the process.
_PLACEHOLDERS: list[Any] = []


def extension_path() -> Path | None:
    """Where torchvision's compiled extension is, or None when torchvision is absent."""
    spec = importlib.util.find_spec("torchvision")
    if spec is None or spec.origin is None:
        return None
    found = sorted(Path(spec.origin).parent.glob("_C*.so"))
    return found[0] if found else None


def extension_loads() -> bool:
    """Whether torchvision's compiled ops load next to the installed torch."""
    import torch

    path = extension_path()
    if path is None:
        return False
    ops: Any = torch.ops
    try:
        ops.load_library(str(path))
    except (OSError, RuntimeError):
        return False
    return True


def _defined(name: str) -> bool:
    import torch

    try:
        getattr(torch.ops.torchvision, name)
    except (AttributeError, RuntimeError):
        return False
    return True


def ensure_torchvision_importable() -> bool:
    """Define the placeholder schemas if needed; True when they were defined (now or before).

    Call before the first ``import torchvision`` / ``timm`` / ``transformers``. Harmless
    when torchvision is absent, already imported, or has a loadable extension.
    """
    if _PLACEHOLDERS:
        return True
    if "torchvision" in sys.modules or extension_path() is None or extension_loads():
        return False
    import torch

    library: Any = torch.library.Library("torchvision", "DEF")  # type: ignore[no-untyped-call]
    for name, schema in UNGUARDED_SCHEMAS.items():
        if not _defined(name):
            library.define(schema)
    _PLACEHOLDERS.append(library)
    return True
