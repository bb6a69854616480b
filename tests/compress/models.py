"""Small models for the compressed precisions (source text, so pytester files can hold it)."""

from __future__ import annotations

#: A "sparsity-trained" MLP: half of each weight (the smallest) is 100x smaller, as
#: sparsity-aware training leaves it, so every built-in compression is healthy on it.
#: Both weights have 4096 elements, past coremltools' default weight_threshold (2048).
MODELS = '''
import torch


class Healthy(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.fc1 = torch.nn.Linear(32, 128)
        self.fc2 = torch.nn.Linear(128, 32)
        with torch.no_grad():
            for p in (self.fc1.weight, self.fc2.weight):
                p[p.abs() <= p.abs().median()] *= 0.01

    def forward(self, x):
        return self.fc2(torch.nn.functional.gelu(self.fc1(x)))


class Odd(torch.nn.Module):
    """fc1 has 100 output channels: not divisible by a palettization group of 16."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.fc1 = torch.nn.Linear(32, 100)
        self.fc2 = torch.nn.Linear(100, 32)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)))
'''

EXAMPLE_SHAPE = (8, 32)


def load() -> dict[str, object]:
    """The model classes, for tests outside pytester."""
    namespace: dict[str, object] = {}
    exec(compile(MODELS, "compress_models", "exec"), namespace)
    return namespace
