"""Saving is exclusive and atomic: a save without force_overwrite never replaces an artifact that
appeared meanwhile, an overwrite is one swap, and killed saves' leftovers are cleaned."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import padlc
from padlc import batch, transform, unbatch
from padlc.artifact import ArtifactWriter
from padlc.artifact import swap as swap_module

MANIFEST = {
    "padlc_version": "0.1.0",
    "kind": "saved",
    "pipeline": "p",
    "module": "pipeline.py",
    "stages": {"preprocess": "a", "forward": "b", "postprocess": "c", "has_batch": True},
}


@transform
def to_tensor(x):
    return torch.tensor(x, dtype=torch.float32)


def _pipeline() -> padlc.Transform:
    return to_tensor >> batch >> transform(torch.nn.Linear(2, 2)) >> unbatch


def test_a_save_never_replaces_an_artifact_that_appeared_after_its_check(tmp_path: Path) -> None:
    target = tmp_path / "model.padl"
    with ArtifactWriter(target) as first, ArtifactWriter(target) as second:
        (first.root / "pipeline.py").write_text("first = 1\n")
        (second.root / "pipeline.py").write_text("second = 2\n")
        first.commit(MANIFEST)  # both checked before either committed
        with pytest.raises(FileExistsError, match="created by someone else"):
            second.commit(MANIFEST)
    assert (target / "pipeline.py").read_text() == "first = 1\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.padl"]


@pytest.mark.skipif(swap_module._RENAMEAT2 is None, reason="renameat2 is not available here")
def test_an_overwrite_is_one_swap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = padlc.save(_pipeline(), tmp_path / "model")
    renames: list[tuple[str, str]] = []
    monkeypatch.setattr(os, "rename", lambda a, b: renames.append((str(a), str(b))))
    padlc.save(_pipeline(), target, force_overwrite=True)
    assert renames == []  # no rename that leaves nothing at the path, however briefly
    assert padlc.load(target) is not None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.padl"]


SAVER = textwrap.dedent(
    """
    import sys, torch, padlc
    from padlc import batch, transform, unbatch
    from padlc.artifact import writer

    @transform
    def to_tensor(x):
        return torch.tensor(x, dtype=torch.float32)

    original = writer.Manifest.to_json
    def slow_to_json(self):  # a save that is killed while it writes
        print("writing", flush=True)
        import time; time.sleep(60)
        return original(self)
    writer.Manifest.to_json = slow_to_json
    padlc.save(to_tensor >> batch >> transform(torch.nn.Linear(2, 2)) >> unbatch, sys.argv[1],
               force_overwrite=True)
    """
)


def _kill_while_writing(tmp_path: Path, target: Path) -> None:
    script = tmp_path.parent / f"{tmp_path.name}-saver.py"
    script.write_text(SAVER)
    with subprocess.Popen(
        [sys.executable, str(script), str(target)], stdout=subprocess.PIPE, text=True
    ) as saver:
        assert saver.stdout is not None and saver.stdout.readline() == "writing\n"
        saver.send_signal(signal.SIGKILL)
        saver.wait(timeout=30)


@pytest.mark.slow  # a fresh process
def test_leftovers_of_killed_saves_are_cleaned_by_the_next_save(tmp_path: Path) -> None:
    target = tmp_path / "model.padl"
    for _ in range(3):
        _kill_while_writing(tmp_path, target)
    # each killed save removed the one before it; the last one's is left
    assert len([p for p in tmp_path.iterdir() if ".tmp-" in p.name]) == 1
    # a save in progress meanwhile keeps its directory: it holds the lock
    with ArtifactWriter(tmp_path / "model.padl", force_overwrite=True) as writer:
        padlc.save(_pipeline(), target, force_overwrite=True)
        assert writer.root.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.padl"]
    assert padlc.load(target) is not None


@pytest.mark.slow  # a fresh process
def test_a_killed_overwrite_leaves_the_old_artifact_in_place(tmp_path: Path) -> None:
    target = padlc.save(_pipeline(), tmp_path / "model")
    before = (target / "manifest.json").read_bytes()
    _kill_while_writing(tmp_path, target)
    assert (target / "manifest.json").read_bytes() == before
