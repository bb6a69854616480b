"""Torch source lines of a library model: the caller is the user's frame, never torch's,
never this package's own trace, and torchvision is not mistaken for torch."""

from __future__ import annotations

import torch

from pytest_coreml_parity.diagnose.source import CodeLine, code_lines
from pytest_coreml_parity.diagnose.subject import Subject

from ..real_models import import_torchvision


def _block_lines() -> dict[str, CodeLine]:
    torchvision = import_torchvision()
    torch.manual_seed(0)
    block = torchvision.models.resnet.BasicBlock(4, 4).eval()
    subject = Subject.from_torch(block, (torch.randn(1, 4, 8, 8),))
    return code_lines(subject.trace())  # the trace this package takes (diagnose/subject.py)


def test_a_torchvision_line_is_the_users_not_torchs_and_has_no_caller_into_the_plugin() -> None:
    lines = _block_lines()
    add = [c for c in lines.values() if c.kind.startswith("add") and c.path.endswith("resnet.py")]
    assert add and all(c.code == "out += identity" for c in add)
    # torchvision/ starts with the text "torch": its lines are the user's, with no caller
    assert all(c.caller is None for c in add)
    relu = [c for c in lines.values() if c.path.endswith("functional.py")]
    assert relu, "torch.nn.functional frames expected (relu, batch_norm)"
    for c in relu:  # torch's own line: called from torchvision's, not from this package's trace
        assert c.caller is not None and c.caller.startswith("resnet.py:"), c
    assert not any("subject.py" in (c.caller or "") for c in lines.values())


def test_looking_up_some_names_gives_the_same_lines_as_the_whole_graph() -> None:
    """The lint reads only its hits' lines (names=): the same CodeLine as the full map."""
    torchvision = import_torchvision()
    torch.manual_seed(0)
    subject = Subject.from_torch(torchvision.models.resnet.BasicBlock(4, 4).eval(), (torch.randn(1, 4, 8, 8),))
    full = code_lines(subject.trace())
    some = sorted(full)[:: max(1, len(full) // 3)]
    assert code_lines(subject.trace(), some) == {name: full[name] for name in some}
    assert code_lines(subject.trace(), ["no such value"]) == {}
