"""Apple's Core AI as a conversion target: convert with coreai-torch, run on coreai-core.

The standalone layer the plugin's target axis builds on (docs/coreai.md):

* :func:`coreai_unavailable_reason` — None when usable here, else why not (cheap);
* :func:`convert_for_coreai` — torch model -> :class:`CoreAIProgram` at fp32/fp16/mixed;
* :class:`CoreAIProgram` — saved to/loaded from a directory; calling it runs the
  interpreter in an isolated worker process (:class:`CoreAIWorker`);
* :func:`record` / :func:`first_nonfinite_op` — per-op values for diagnosis.

Lazy (PEP 562): importing this package imports neither torch nor coreai.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_getattr

if TYPE_CHECKING:
    from .availability import coreai_unavailable_reason as coreai_unavailable_reason
    from .convert import (
        ARITHMETIC_FP32_OPS as ARITHMETIC_FP32_OPS,
    )
    from .convert import (
        convert_for_coreai as convert_for_coreai,
    )
    from .errors import (
        CoreAIError as CoreAIError,
    )
    from .errors import (
        CoreAIRuntimeError as CoreAIRuntimeError,
    )
    from .errors import (
        CoreAITimeoutError as CoreAITimeoutError,
    )
    from .errors import (
        CoreAIUnavailableError as CoreAIUnavailableError,
    )
    from .program import CoreAIProgram as CoreAIProgram
    from .program import OpInfo as OpInfo
    from .program import TensorSpec as TensorSpec
    from .recording import (
        OpValue as OpValue,
    )
    from .recording import (
        first_nonfinite_op as first_nonfinite_op,
    )
    from .recording import (
        record as record,
    )
    from .worker import CoreAIWorker as CoreAIWorker
    from .worker import default_worker as default_worker

_WHERE = {
    "coreai_unavailable_reason": "availability",
    "ARITHMETIC_FP32_OPS": "convert",
    "convert_for_coreai": "convert",
    "CoreAIError": "errors",
    "CoreAIRuntimeError": "errors",
    "CoreAITimeoutError": "errors",
    "CoreAIUnavailableError": "errors",
    "CoreAIProgram": "program",
    "OpInfo": "program",
    "TensorSpec": "program",
    "OpValue": "recording",
    "first_nonfinite_op": "recording",
    "record": "recording",
    "CoreAIWorker": "worker",
    "default_worker": "worker",
}

__all__ = sorted(_WHERE)


__getattr__ = lazy_getattr(__name__, _WHERE)
