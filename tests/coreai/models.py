"""Plain-torch models for the Core AI tests and benchmark (torchvision does not import here)."""

from __future__ import annotations

import torch


class ComplexDiv(torch.nn.Module):
    """(ra + i·ia) / (rb + i·ib), textbook formula: overflows at fp16 when |b| ~ 300."""

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        ra, ia, rb, ib = a.unbind(-1)
        den = rb * rb + ib * ib
        return torch.stack([(ra * rb + ia * ib) / den, (ia * rb - ra * ib) / den], -1)


class MatMul(torch.nn.Module):
    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return a @ b


class Einsum(torch.nn.Module):
    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.einsum("ik,kj->ij", a, b)


class TransformerBlock(torch.nn.Module):
    """Pre-norm block: multi-head self-attention + GELU MLP, with residuals."""

    def __init__(self, dim: int = 64, heads: int = 4) -> None:
        super().__init__()
        self.heads = heads
        self.norm1 = torch.nn.LayerNorm(dim)
        self.qkv = torch.nn.Linear(dim, 3 * dim)
        self.proj = torch.nn.Linear(dim, dim)
        self.norm2 = torch.nn.LayerNorm(dim)
        self.fc1 = torch.nn.Linear(dim, 4 * dim)
        self.fc2 = torch.nn.Linear(4 * dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).chunk(3, dim=-1)
        q, k, v = (z.reshape(b, t, self.heads, d // self.heads).transpose(1, 2) for z in (q, k, v))
        att = torch.softmax(q @ k.transpose(-1, -2) / (d // self.heads) ** 0.5, dim=-1)
        y = (att @ v).transpose(1, 2).reshape(b, t, d)
        x = x + self.proj(y)
        out: torch.Tensor = x + self.fc2(torch.nn.functional.gelu(self.fc1(self.norm2(x))))
        return out


class SmallCNN(torch.nn.Module):
    """conv-bn-relu x2, max-pool, global average pool, linear: a tiny image classifier."""

    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        self.conv1 = torch.nn.Conv2d(3, 16, 3, padding=1)
        self.bn1 = torch.nn.BatchNorm2d(16)
        self.conv2 = torch.nn.Conv2d(16, 32, 3, padding=1, stride=2)
        self.bn2 = torch.nn.BatchNorm2d(32)
        self.fc = torch.nn.Linear(32, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn1(self.conv1(x)))
        x = torch.nn.functional.max_pool2d(x, 2)
        x = torch.relu(self.bn2(self.conv2(x)))
        logits: torch.Tensor = self.fc(x.mean(dim=(2, 3)))
        return logits


class TwoOutputs(torch.nn.Module):
    """Nested output structure: a dict holding a tuple and a list."""

    def forward(self, a: torch.Tensor) -> dict[str, object]:
        return {"pair": (a * 2, a.sum(-1)), "rest": [a - 1]}


def seeded(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Re-initialize ``model`` deterministically (and give BatchNorm non-trivial statistics)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.2)
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                assert module.running_mean is not None and module.running_var is not None
                module.running_mean.copy_(
                    torch.randn(module.num_features, generator=generator) * 0.1
                )
                module.running_var.copy_(torch.rand(module.num_features, generator=generator) + 0.5)
    return model.eval()
