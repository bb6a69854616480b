"""The complex division as test-file source for pytester runs: the model and its fixtures.

Tests splice it after their own imports, so the lines they assert (``test_complex.py:9:
den = ...``) stay where they were.
"""

COMPLEX_DIV_SOURCE = """

class ComplexDiv(torch.nn.Module):
    def forward(self, a):
        ra, ia, rb, ib = a.unbind(-1)
        den = rb * rb + ib * ib
        return torch.stack([(ra * rb + ia * ib) / den, (ia * rb - ra * ib) / den], -1)


@pytest.fixture
def torch_model():
    return ComplexDiv().eval()


@pytest.fixture
def example_inputs():
    torch.manual_seed(0)
    return (torch.randn(8, 4),)
"""
