"""Uses of padlc's public API, for the type checker only (``tests/unit/test_typing.py`` runs mypy
on a copy outside the repository; nothing here is executed).

Every line ending in ``# error: CODE`` is a mistake mypy must report with that error code; every
other line must pass. Add a line here when a part of the API gains a type.
"""

from __future__ import annotations

from pathlib import Path

import torch

import padl_runtime
import padlc
from padlc import IfTrain, Transform, Try, batch, identity, same, transform, unbatch


@transform
def to_tensor(pixels: list[int]) -> torch.Tensor:
    return torch.tensor(pixels, dtype=torch.float32) / 16


@transform
class Scale(torch.nn.Module):
    def __init__(self, factor: float) -> None:
        super().__init__()
        self.factor = factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.factor


model = transform(torch.nn.Linear)(64, 10)
layer: torch.nn.Linear = model
scaled = Scale(2.0)
nn = transform(torch.nn)
pipeline = to_tensor >> batch >> model >> scaled >> same.argmax(-1) >> unbatch >> same.item()
composed: Transform = pipeline
branches = (to_tensor + to_tensor) >> (identity / same[0]) >> ~same.float()
noisy = IfTrain(transform(lambda x: x + 1)) >> Try(to_tensor, identity, (ValueError,))
named = to_tensor - "prepare"
images = torch.randint(0, 17, (100, 64)).tolist()

one = pipeline.infer_apply(images[0])
outputs = pipeline.eval_apply(images, batch_size=32, num_workers=0, progress=False)
count: int = len(outputs)
print(outputs.stats)
outputs.close()
with pipeline.eval_apply(images, loader_options={"timeout": 60}, shuffle=True) as stream:
    first = next(stream)
losses = (to_tensor >> batch >> model).train_apply(images, batch_size=8, drop_last=True)
optimizer = torch.optim.Adam(pipeline.pd_parameters(), lr=1e-3)
saved: Path = padlc.save(pipeline, "digits.padl", force_overwrite=True)
again: Transform = padlc.load(saved, params={"threshold": 0.9}, trust_code=True)
result: padlc.BuildResult = padlc.build(
    pipeline, "built.padl", inputs=images[:4], backend=["export", "onnx"], max_batch=64
)
print(result.report(), result.backends)
served = padl_runtime.load("built.padl", trust_code=True)
served.eval_apply(images, batch_size=16, num_workers=2, loader_options={"timeout": 30})
to_tensor(images[0])

# -- mistakes -----------------------------------------------------------------------------------
pipeline.eval_apply(images, batchsize=3)  # error: call-arg
pipeline.eval_apply(images, batch_size="32")  # error: arg-type
pipeline.train_apply(images, post_workers=2)  # error: call-arg
pipeline.eval_apply(images, loader_options=60)  # error: arg-type
pipeline.infer_apply()  # error: call-arg
padlc.build(pipeline, "built.padl", inputs=images, backend=7)  # error: arg-type
padlc.build(pipeline, "built.padl", inputs=images, backend="exprot")  # error: arg-type
padlc.build(pipeline, "built.padl", inputs=images, max_batchsize=8)  # error: call-arg
padlc.build(pipeline, "built.padl")  # error: call-arg
padlc.save(pipeline)  # error: call-arg
padlc.load("digits.padl", threshold=0.9)  # error: call-arg
transform(3)  # error: call-overload
pipeline >> 3  # error: operator
served.eval_apply(images, batchsize=16)  # error: call-arg
