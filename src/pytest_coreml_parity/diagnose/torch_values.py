"""torch's own intermediate values, by the debug names coremltools names its ops after.

coremltools names each MIL op after the debug name of the torch value it lowers
(``8``, ``den``, ``input.1``) and keeps that name in the op's torch scope. So the
traced graph (numbered as coremltools numbers it: :func:`converter_graph`), re-run
with every tensor it computes registered as an output, gives
the value each op (or group of ops lowered from one torch op) should hold. One
extra torch run on the failing inputs; no conversion.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..op_names import converter_graph


def traced_values(traced: Any, inputs: Sequence[Any]) -> dict[str, np.ndarray]:
    """Debug name -> value of every floating tensor the traced graph computes on ``inputs``.

    ``traced`` is a ``torch.jit`` trace of the model; ``inputs`` are tensors of the
    traced dtypes. Empty when the graph cannot be re-run this way (a scripted
    module with control flow, say): the caller then compares nothing.
    """
    import torch

    try:
        graph = converter_graph(traced)  # a copy: registering outputs leaves the trace alone
        wanted = [
            value
            for node in graph.nodes()
            if node.kind() != "prim::GetAttr"
            for value in node.outputs()
            if value.type().kind() == "TensorType"
        ]
        if not wanted:
            return {}
        for value in wanted:
            graph.registerOutput(value)
        graph.makeMultiOutputIntoTuple()
        probe = torch._C._create_function_from_graph("coreml_parity_probe", graph)
        with torch.no_grad():
            results = probe(traced._c, *inputs)
    except Exception:  # torch internals differ or the graph does not re-run: know nothing
        return {}
    values: dict[str, np.ndarray] = {}
    for value, result in zip(wanted, results[1:], strict=False):
        if isinstance(result, torch.Tensor) and result.dtype.is_floating_point:
            values[value.debugName()] = result.detach().cpu().float().numpy()
    return values
