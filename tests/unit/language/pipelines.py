import pytest
import torch

from padlc import transform


@transform
def plus_one(x):
    return x + 1


@transform
def times_two(x):
    return x * 2


@transform
def times_three(x):
    return x * 3


@transform
def plus(x, y):
    return x + y


@transform
def add_all(*args):
    return sum(args)


@transform
class Polynomial(torch.nn.Module):
    def __init__(self, a, b):
        super().__init__()
        self.a = torch.nn.Parameter(torch.tensor(float(a)))
        self.b = torch.nn.Parameter(torch.tensor(float(b)))

    def forward(self, x):
        return x**self.a + x**self.b


@pytest.fixture
def fns():
    return {
        "plus_one": plus_one,
        "times_two": times_two,
        "times_three": times_three,
        "plus": plus,
        "add_all": add_all,
        "Polynomial": Polynomial,
    }


class PolynomialModule(torch.nn.Module):
    """Polynomial as a plain module (not a transform): for `transform(torch.jit.script(...))`."""

    def __init__(self, a, b):
        super().__init__()
        self.a = torch.nn.Parameter(torch.tensor(float(a)))
        self.b = torch.nn.Parameter(torch.tensor(float(b)))

    def forward(self, x):
        return x**self.a + x**self.b


class WeightedSum(torch.nn.Module):
    def forward(self, x, y, weight: float = 1.0):
        return x + weight * y


doubled_plus_one = times_two >> plus_one  # a composed branch bound to a module-level variable
