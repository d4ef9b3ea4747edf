"""Build coverage of real models and the size of built artifacts: docs/building.md's tables.

    python -m benchmarks.real_models                     # both tables (several minutes on 2 cores)
    python -m benchmarks.real_models --coverage          # model x backend only
    python -m benchmarks.real_models --sizes --vit base  # artifact sizes for a ViT-B/16-size model

Coverage: every model of tests/e2e/real_models_code.py (transformers' ViT, ResNet, a BERT-like
classifier, a GPT-2-like scorer from small configs, an LSTM tagger, a model with data-dependent
control flow; all model *instances*) built with export, onnx and torchscript (aoti for ResNet), each
build verified by padlc build itself in a fresh process (infer_apply and eval_apply against the
eager pipeline). Printed: built or why not, the max abs error the verification measured, the build
seconds (tracing, lowering, verification), the artifact's size.

Sizes: a ViT (``--vit base``: ViT-B/16, 86M parameters; ``small``: a quick check) built with each
backend, with its lineage (a capturable ``transform(VisionTransformer)(...)``) and without it
(``--slim``; a model whose head was replaced after construction, which padlc cannot capture:
compiled-only), and a transformers ``ViTModel`` instance, against the size of its weights.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

import padlc
from padl_runtime import read_manifest
from padlc import batch, same, transform, unbatch

BACKENDS = ("export", "onnx", "torchscript")


def _size(path: Path) -> int:
    return sum(entry.size for entry in read_manifest(path).files)


def _mib(n: float) -> str:
    return f"{n / 2**20:.1f} MiB" if n >= 2**20 else f"{n / 2**10:.0f} KiB"


# -- coverage -------------------------------------------------------------------------------------
def coverage(root: Path) -> list[str]:
    from tests.e2e import real_models_code as code

    vocab = code.write_vocab(root)
    rows = [*code.ROWS, code.GATED]
    cells = [(row, b) for row in rows for b in BACKENDS] + [(code.ROWS[1], "aoti")]
    lines = [
        "| model | backend | built | max abs error | build s | size |",
        "|---|---|---|---|---|---|",
    ]
    for row, backend in cells:
        pipeline, inputs = row.make(vocab), row.inputs()
        started = time.perf_counter()
        try:
            result = padlc.build(pipeline, root / f"{row.name}-{backend}", inputs=inputs, backend=backend)  # fmt: skip
        except padlc.PadlcError as exc:
            seconds = time.perf_counter() - started
            lines.append(f"| {row.name} | {backend} | no: {_why(exc)} | — | {seconds:.1f} | — |")
            continue
        error = "—" if result.max_abs_error is None else f"{result.max_abs_error:.2g}"
        lines.append(
            f"| {row.name} | {backend} | yes | {error} | {result.seconds:.1f} | "
            f"{_mib(_size(result.path))} |"
        )
        print(lines[-1], file=sys.stderr, flush=True)  # progress
    return lines


def _why(exc: Exception) -> str:
    """A failed build in a table cell: the error torch raised and the user's line, when named."""
    first = str(exc).splitlines()[0]
    line = re.search(r"at (\S+:\d+) `([^`]*)`", first)
    error = re.search(r": (\w+(?:Error|Node|Exception)\w*): ", first)
    if line and error:
        return f"{error.group(1)} at {line.group(1)} `{line.group(2)}`"
    return first[:100]


# -- sizes ----------------------------------------------------------------------------------------
VIT_SIZES = {
    "base": {"image": 224, "patch": 16, "dim": 768, "depth": 12, "heads": 12, "mlp": 3072},
    "small": {"image": 64, "patch": 16, "dim": 192, "depth": 4, "heads": 3, "mlp": 768},
}


class VisionTransformer(nn.Module):
    """A ViT in plain torch (patch embedding, class token, encoder, head), capturable by padlc."""

    def __init__(
        self, image: int, patch: int, dim: int, depth: int, heads: int, mlp: int, classes: int = 10
    ) -> None:
        super().__init__()
        self.embed = nn.Conv2d(3, dim, patch, patch)
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.position = nn.Parameter(torch.randn(1, (image // patch) ** 2 + 1, dim) * 0.02)
        layer = nn.TransformerEncoderLayer(dim, heads, mlp, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.embed(images).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], dim=1) + self.position
        return self.head(self.norm(self.encoder(x))[:, 0])


def _vit_pipeline(layer: Any) -> padlc.Transform:
    return (
        same.float() >> same.div(255.0) >> same.permute(2, 0, 1)
        >> batch >> layer >> unbatch >> same.softmax(-1)
    )  # fmt: skip


def sizes(root: Path, which: str) -> list[str]:
    from transformers import ViTConfig, ViTModel

    spec = VIT_SIZES[which]
    torch.manual_seed(0)
    capturable = _vit_pipeline(transform(VisionTransformer)(**spec))
    config = ViTConfig(
        image_size=spec["image"], patch_size=spec["patch"], hidden_size=spec["dim"],
        num_hidden_layers=spec["depth"], num_attention_heads=spec["heads"],
        intermediate_size=spec["mlp"],
    )  # fmt: skip
    instance = ViTModel(config, add_pooling_layer=False).eval()
    # a model whose head was replaced after construction: padlc cannot capture it (compiled-only)
    model = VisionTransformer(**spec)
    model.head = nn.Linear(spec["dim"], 3)
    fine_tuned = _vit_pipeline(transform(model.eval()))
    instance_pipeline = (
        same.float() >> same.div(255.0) >> same.permute(2, 0, 1)
        >> batch >> transform(instance) >> same.last_hidden_state >> unbatch >> same[0]
    )  # fmt: skip
    generator = torch.Generator().manual_seed(0)
    images = [
        torch.randint(
            0, 256, (spec["image"], spec["image"], 3), dtype=torch.uint8, generator=generator
        )
        for _ in range(2)
    ]
    lines = [
        "| model | build | backend | artifact | weights | artifact / weights | build s |",
        "|---|---|---|---|---|---|---|",
    ]
    cases: list[tuple[str, padlc.Transform, str, bool]] = [
        ("VisionTransformer (captured)", capturable, b, False) for b in (*BACKENDS, "eager")
    ]
    cases += [("VisionTransformer (captured)", capturable, "export", True)]
    cases += [("transformers ViTModel instance", instance_pipeline, b, False) for b in ("export", "onnx")]  # fmt: skip
    cases += [("VisionTransformer, new head", fine_tuned, "export", False)]
    for name, pipeline, backend, slim in cases:
        layer = pipeline._pd_stages().forward.pd_layers[0]
        weights = sum(t.numel() * t.element_size() for t in layer.state_dict().values())
        target = root / f"{name.split()[0]}-{backend}{'-slim' if slim else ''}"
        result = padlc.build(pipeline, target, inputs=images, backend=backend, slim=slim)
        size = _size(result.path)
        kind = "slim" if slim else ("compiled-only" if result.without_lineage else "with lineage")
        lines.append(
            f"| {name} | {kind} | {backend} | {_mib(size)} | {_mib(weights)} | "
            f"{size / weights:.2f}x | {result.seconds:.0f} |"
        )
        print(lines[-1], file=sys.stderr, flush=True)  # progress
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--coverage", action="store_true", help="only the coverage table")
    parser.add_argument("--sizes", action="store_true", help="only the sizes table")
    parser.add_argument("--vit", choices=sorted(VIT_SIZES), default="base")
    args = parser.parse_args(argv)
    both = not (args.coverage or args.sizes)
    print(
        f"padlc {padlc.__version__}, torch {torch.__version__}, {torch.get_num_threads()} threads"
    )
    with tempfile.TemporaryDirectory(prefix="padlc-real-models-") as scratch:
        root = Path(scratch)
        if both or args.coverage:
            print("\n".join(["", *coverage(root)]))
        if both or args.sizes:
            print("\n".join(["", *sizes(root, args.vit)]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
