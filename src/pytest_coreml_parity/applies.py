"""Which stacks each option, ini key and marker keyword applies to.

A suite may run both stacks (``--coreml-targets=coreml,coreai``). A setting that does not
apply to a test's stack is never silently ignored: the plugin fails or skips that test with
a message naming the setting and the stack (``plugin.py`` asks :func:`stacks_of`). One
table, read by the plugin, the docs test (every keyword documented once, with its stacks)
and the fixed-shape hint. Stack names come from the stack table (:mod:`.stacks`); this
module compares none itself. Cheap to import: no numpy, torch or coremltools.
"""

from __future__ import annotations

from .gates import GENERATION
from .gates import names as gate_names
from .stacks import DEFAULT_STACKS, names

#: Core ML, the default stack: the settings of its conversion recipe (ct.convert) and runner.
COREML = DEFAULT_STACKS[0]

#: setting (option / ini / marker keyword, by its settings name) -> the stacks it applies to.
#: A name not listed applies to every stack of the table (:func:`stacks.names`).
ONLY: dict[str, tuple[str, ...]] = {
    # Core ML conversion recipe (ct.convert): Core AI converts through coreai-torch.
    "target": (COREML,),
    "compute_units": (COREML,),
    "input_dtypes": (COREML,),
    "export": (COREML,),
    "optimization": (COREML,),
    "convert_kwargs": (COREML,),
    "function": (COREML,),
    "package": (COREML,),
    "precision": (COREML,),
    "package_inputs": (COREML,),
    "backend": (COREML,),
    "emulator_profile": (COREML,),
    "headroom": (COREML,),
    "headroom_action": (COREML,),
    "headroom_report": (COREML,),
    "shims": (COREML,),  # coremltools converter shims
    "weight_report": (COREML,),  # read from the Core ML program's weights
    "profile_verdicts": (COREML,),  # the emulator's profiles
    # assert_generation's gates: only Core ML wraps a causal LM (stacks' wraps_decoders)
    **{gate: (COREML,) for gate in gate_names(GENERATION)},
    # fixtures
    "coreml_convert": (COREML,),
    "coreml_convert_kwargs": (COREML,),
    "torch_preprocess": (COREML,),
}


def stacks_of(name: str) -> tuple[str, ...]:
    """The stacks setting (or fixture) ``name`` applies to."""
    return ONLY.get(name) or names()


def applies(name: str, stack: str) -> bool:
    return stack in stacks_of(name)
