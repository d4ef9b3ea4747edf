"""Load time of built artifacts for a ResNet-18-size model (11.7M parameters), per backend.

    python -m benchmarks.load_time [--backends export,torchscript,onnx,eager] [--repeat 3]

Builds `uint8 HWC image → float CHW → ResNet-18 → argmax` once per backend, then in fresh
processes measures `padl_runtime.load` (from after `import torch`, so torch's own import is not
counted) and the first `infer_apply` call (which would include any JIT compilation). The target
(issue 4): load ≤ 2 s on CPU, no compilation at load.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

import padlc
from padlc import batch, same, transform, unbatch

_CHILD = r"""
import json, sys, time
import numpy as np
import torch
start = time.perf_counter()
import padl_runtime
pipeline = padl_runtime.load(sys.argv[1], backend=sys.argv[2])
loaded = time.perf_counter()
image = np.zeros((224, 224, 3), dtype=np.uint8)
pipeline.infer_apply(image)
first = time.perf_counter()
pipeline.infer_apply(image)
second = time.perf_counter()
print(json.dumps({"load_s": loaded - start, "first_infer_s": first - loaded, "second_infer_s": second - first}))
"""


class _Block(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.down = (
            nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
            if stride != 1 or cin != cout
            else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(y)) + self.down(x))


@transform
class ResNet18(nn.Module):
    """The ResNet-18 layout (BasicBlocks 2-2-2-2, 64→512 channels), written out here."""

    def __init__(self, classes: int = 1000) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, 64, 7, 2, 3, bias=False),
            nn.BatchNorm2d(64),
            nn.ReLU(),
            nn.MaxPool2d(3, 2, 1),
        )
        layers, cin = [], 64
        for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            layers += [_Block(cin, cout, stride), _Block(cout, cout, 1)]
            cin = cout
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(512, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.layers(self.stem(x)).mean((2, 3)))


@transform
def to_tensor(image):
    return torch.as_tensor(image)


def pipeline() -> padlc.Transform:
    torch.manual_seed(0)
    return (
        to_tensor >> same.permute(2, 0, 1) >> same.float() >> same.div(255.0)
        >> batch >> ResNet18() >> same.argmax(-1) >> unbatch >> same.item()
    )  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backends", default="export,torchscript,onnx,eager")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    import numpy as np

    p = pipeline()
    params = sum(t.numel() for t in p.pd_parameters())
    inputs = [
        np.random.default_rng(i).integers(0, 256, (224, 224, 3), dtype=np.uint8) for i in range(2)
    ]
    print(f"ResNet-18-size pipeline: {params / 1e6:.1f}M parameters; torch {torch.__version__}")
    print(
        f"{'backend':<12}{'build s':>9}{'size MiB':>10}{'load s':>9}{'1st infer s':>13}{'2nd infer s':>13}"
    )
    with tempfile.TemporaryDirectory() as scratch:
        for name in args.backends.split(","):
            target = Path(scratch) / f"resnet-{name}.padl"
            start = time.perf_counter()
            try:
                padlc.build(p, target, inputs=inputs, backend=name)
            except padlc.PadlcError as exc:
                print(f"{name:<12}build failed: {str(exc).splitlines()[0]}")
                continue
            build_s = time.perf_counter() - start
            size = sum(f.stat().st_size for f in target.rglob("*") if f.is_file()) / 2**20
            runs = []
            for _ in range(args.repeat):
                out = subprocess.run(
                    [sys.executable, "-c", _CHILD, str(target), name],
                    capture_output=True, text=True, check=True,
                )  # fmt: skip
                runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
            best = {key: min(r[key] for r in runs) for key in runs[0]}
            print(
                f"{name:<12}{build_s:>9.1f}{size:>10.1f}{best['load_s']:>9.2f}"
                f"{best['first_infer_s']:>13.3f}{best['second_infer_s']:>13.3f}"
            )


if __name__ == "__main__":
    main()
