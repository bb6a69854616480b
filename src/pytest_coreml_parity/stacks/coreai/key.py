"""The Core AI stack's cache key: the Core ML key of the exported graph, plus Core AI's own inputs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def program_key(
    exported: Any,
    torch_model: Any,
    example_inputs: Sequence[Any],
    input_names: Sequence[str],
    options: Any,
    fp32_ops: frozenset[str] | None,
) -> str:
    """The disk-cache key of converting ``exported`` for Core AI.

    The package's sound key (:func:`pytest_coreml_parity.convert.conversion_key`: the
    exported graph without source locations, its constants, every parameter and buffer,
    the input signature and names, the options and versions) extended with what only
    Core AI depends on: the target, precision, ``fp32_ops`` and the coreai versions.
    """
    import hashlib

    from ...convert import Captured, conversion_key
    from ...coreai.convert import versions

    spec = exported.call_spec.out_spec
    structure = str(spec) if spec is not None else "leaf"
    captured = Captured(
        torch_model=torch_model,
        example_inputs=tuple(example_inputs),
        source=exported,
        structure=structure,
        leaf_dtypes=(),  # the exported graph's text already fixes output dtypes
        names=tuple(input_names),
    )
    h = hashlib.sha256(conversion_key(captured, options).encode())
    h.update(b"\0coreai\0")
    h.update(repr((options.precision, sorted(fp32_ops or ()), sorted(versions().items()))).encode())
    return "coreai-" + h.hexdigest()[:32]
