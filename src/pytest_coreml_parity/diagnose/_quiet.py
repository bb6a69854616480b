"""Diagnosis runs models on inputs that overflow on purpose: keep that quiet.

numpy's overflow RuntimeWarnings (in kernels) and coremltools' warnings about
fp32 consts that overflow fp16 are expected here, and the test suites of our
users often turn warnings into errors; a diagnosis must not fail because of them.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np

F = TypeVar("F", bound=Callable[..., Any])


def quiet(fn: F) -> F:
    """Run ``fn`` with warnings ignored and numpy floating-point errors silenced."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
