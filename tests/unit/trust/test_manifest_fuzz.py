"""Seeded fuzz of manifest.json: single-bit flips and truncations end in a correct load or an
ArtifactError, never another exception and never a silently different output."""

from __future__ import annotations

import contextlib
import json
import random
import shutil
from pathlib import Path

import torch

import padl_runtime
from padl_runtime.errors import ArtifactError
from padl_runtime.manifest import encode_manifest, parse_manifest
from padlc import transform

SEED = 15
ITEM = [1.0, 2.0, 3.0]


@transform
def to_tensor(x):
    return torch.tensor(x, dtype=torch.float32)


def _damaged(raw: bytes, rng: random.Random, count: int) -> list[bytes]:
    cases = []
    for _ in range(count):
        position = rng.randrange(len(raw) * 8)
        flipped = bytearray(raw)
        flipped[position // 8] ^= 1 << (position % 8)
        cases.append(bytes(flipped))
    cases += [raw[:n] for n in rng.sample(range(len(raw)), min(count // 4, len(raw)))]
    return cases


def test_damaged_manifests_load_correctly_or_raise_artifact_error(
    built: Path, tmp_path: Path
) -> None:
    copy = Path(shutil.copytree(built, tmp_path / "copy.padl"))
    raw = (copy / "manifest.json").read_bytes()
    expected = padl_runtime.load(copy).infer_apply(ITEM)
    outcomes = {"loaded": 0, "refused": 0}
    cases = _damaged(raw, random.Random(SEED), 2400)
    for case in cases:
        (copy / "manifest.json").write_bytes(case)
        try:
            loaded = padl_runtime.load(copy, trust_code=True)
        except ArtifactError:
            outcomes["refused"] += 1
            continue
        assert torch.equal(loaded.infer_apply(ITEM), expected), case
        outcomes["loaded"] += 1
    # the digest makes every single-bit flip and truncation show
    assert outcomes == {"loaded": 0, "refused": len(cases)} and len(cases) == 3000


def test_edited_manifests_with_a_recomputed_digest_parse_or_raise_artifact_error(
    built: Path, tmp_path: Path
) -> None:
    """An editor who recomputes the digest gets past it: every field is still checked."""
    raw = (built / "manifest.json").read_bytes()
    body = raw[: raw.rindex(b',\n  "digest"')] + b"\n}\n"
    rng = random.Random(SEED)
    parsed = refused = 0
    copy = Path(shutil.copytree(built, tmp_path / "copy.padl"))
    loads = 0
    for case in _damaged(body, rng, 2400):
        try:
            data = json.loads(case)
            text = encode_manifest(data).encode() if isinstance(data, dict) else case
        except (ValueError, UnicodeDecodeError):
            text = case
        try:
            parse_manifest(text)
        except ArtifactError:
            refused += 1
            continue
        parsed += 1
        if (
            loads < 150 and rng.random() < 0.2
        ):  # and loading what parses fails only as ArtifactError
            loads += 1
            (copy / "manifest.json").write_bytes(text)
            with contextlib.suppress(ArtifactError):
                padl_runtime.load(copy, trust_code=True)
    assert parsed and refused
