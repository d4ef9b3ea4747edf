"""Pipelines written as users write them: model instances, mode switches (built by
tests/e2e/test_build_instances.py and tests/e2e/test_build_modes.py)."""

from __future__ import annotations

import torch
from torch import nn

from padlc import IfEval, IfInfer, Transform, batch, same, transform, unbatch


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Linear(4, 8)
        self.head = nn.Linear(8, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x).relu())


torch.manual_seed(0)
#: a model fine-tuned with a new head: padlc cannot save it (the statement that created it no
#: longer builds it), so a build records it as compiled-only
MODEL = Net()
MODEL.head = nn.Linear(8, 3)
VECTORS = [[0.5, -1.0, 2.0, 0.0], [1.0, 1.0, -3.0, 0.25], [0.0, 0.1, 0.2, 0.3]]


def to_tensor(values: list[float]) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32)


def clean(x: torch.Tensor) -> torch.Tensor:
    return x.clamp(-1.0, 1.0)


def shout(x: torch.Tensor) -> torch.Tensor:
    return x * 10.0


def label(index: torch.Tensor) -> str:
    return ("low", "mid", "high")[int(index)]


def instance() -> Transform:
    return transform(to_tensor) >> batch >> transform(MODEL) >> unbatch >> same.argmax(-1)


def mode_switches() -> Transform:
    """infer_apply and eval_apply run different preprocess and postprocess steps."""
    torch.manual_seed(0)
    return (
        transform(to_tensor) >> IfInfer(transform(clean), transform(shout))
        >> batch >> transform(nn).Linear(4, 3) >> unbatch
        >> IfEval(same.softmax(-1), same.argmax(-1))
    )  # fmt: skip


def forward_switch() -> Transform:
    """A mode switch inside the forward stage: the compiled forward runs infer mode's branch."""
    torch.manual_seed(0)
    return (
        transform(to_tensor) >> batch >> transform(nn).Linear(4, 3) >> IfInfer(same.relu())
        >> unbatch
    )  # fmt: skip


def wide() -> Transform:
    """Enough weights that a copy of them shows in the artifact's size."""
    torch.manual_seed(0)
    return (
        transform(to_tensor) >> batch >> transform(nn).Linear(4, 256) >> same.relu()
        >> transform(nn).Linear(256, 256) >> same.relu() >> transform(nn).Linear(256, 3)
        >> unbatch >> same.argmax(-1) >> transform(label)
    )  # fmt: skip


def no_batch_switches() -> Transform:
    """Without `batch` the whole pipeline before `unbatch` runs per item as generated Python."""
    torch.manual_seed(0)
    return (
        transform(to_tensor) >> IfInfer(transform(clean), transform(shout))
        >> transform(nn).Linear(4, 3) >> unbatch >> IfInfer(same.argmax(-1), same.softmax(-1))
    )  # fmt: skip
