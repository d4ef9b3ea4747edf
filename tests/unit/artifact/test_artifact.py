"""Writing atomically and refusing damaged artifacts before running any of their code."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch

import padlc
from padl_runtime.manifest import encode_manifest
from padlc import ArtifactError, batch, transform, unbatch
from padlc.artifact import ArtifactWriter

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
    torch.manual_seed(0)
    return to_tensor >> batch >> transform(torch.nn.Linear)(2, 2) >> unbatch


@pytest.fixture
def artifact(tmp_path: Path) -> Path:
    return padlc.save(_pipeline(), tmp_path / "model")


def test_save_adds_the_suffix_and_load_gives_the_same_outputs(artifact: Path) -> None:
    assert artifact.name == "model.padl"
    assert {p.name for p in artifact.iterdir()} == {
        "pipeline.py",
        "weights.safetensors",
        "requirements.txt",
        "manifest.json",
    }
    loaded = padlc.load(artifact)
    assert torch.equal(loaded.infer_apply([1.0, 2.0]), _pipeline().infer_apply([1.0, 2.0]))
    assert all(isinstance(p, torch.nn.Parameter) for p in loaded.pd_parameters())


def test_manifest_lists_every_file_with_its_hash_and_the_stages(artifact: Path) -> None:
    manifest = json.loads((artifact / "manifest.json").read_text())
    assert manifest["kind"] == "saved" and manifest["module"] == "pipeline.py"
    assert {f["path"] for f in manifest["files"]} == {
        "pipeline.py",
        "weights.safetensors",
        "requirements.txt",
    }
    assert manifest["stages"]["has_batch"] is True


def test_manifest_records_that_the_pipeline_has_unbatch(artifact: Path) -> None:
    manifest = json.loads((artifact / "manifest.json").read_text())
    assert manifest["stages"]["has_unbatch"] is True


def test_stage_keys_this_runtime_does_not_know_are_ignored() -> None:
    from padl_runtime.manifest import Manifest

    listed = [{"path": "pipeline.py", "sha256": "0" * 64, "size": 1}]
    data = {"format": "padl", "format_version": 1, "files": listed, **MANIFEST}
    data["stages"] = {**MANIFEST["stages"], "from_a_later_writer": 1}
    manifest = Manifest.from_dict(data)
    assert manifest.stages.has_batch and not manifest.stages.has_unbatch


def test_a_manifest_written_before_has_unbatch_was_recorded_says_it_does_not_know() -> None:
    # The runtime then removes the batch axis in infer_apply, as those artifacts did when built.
    from padl_runtime.manifest import Manifest

    listed = [{"path": "pipeline.py", "sha256": "0" * 64, "size": 1}]
    data = {"format": "padl", "format_version": 1, "files": listed, **MANIFEST}
    data["stages"] = {k: v for k, v in MANIFEST["stages"].items() if k != "has_unbatch"}
    assert Manifest.from_dict(data).stages.has_unbatch is None


def test_existing_target_needs_force_overwrite(artifact: Path) -> None:
    with pytest.raises(FileExistsError, match="force_overwrite"):
        padlc.save(_pipeline(), artifact)
    padlc.save(_pipeline(), artifact, force_overwrite=True)
    assert padlc.load(artifact) is not None


def test_failed_overwrite_leaves_the_old_artifact_intact(artifact: Path) -> None:
    before = (artifact / "pipeline.py").read_text()
    bad = to_tensor >> transform(lambda x: os.stat(os.devnull))
    with open(os.devnull) as handle, pytest.raises(padlc.SaveError):  # an open file cannot be saved
        padlc.save(transform(lambda x: handle.read()) >> bad, artifact, force_overwrite=True)
    assert (artifact / "pipeline.py").read_text() == before
    assert [p.name for p in artifact.parent.iterdir()] == ["model.padl"]  # no temp dir left


def test_writer_discards_the_temp_dir_without_commit(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), ArtifactWriter(tmp_path / "x") as writer:
        (writer.root / "a.txt").write_text("a")
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_writer_commit_hashes_nested_files(tmp_path: Path) -> None:
    with ArtifactWriter(tmp_path / "x") as writer:
        (writer.root / "data").mkdir()
        (writer.root / "data" / "v.json").write_text("[1]")
        path = writer.commit(MANIFEST)
    files = json.loads((path / "manifest.json").read_text())["files"]
    assert [f["path"] for f in files] == ["data/v.json"]


def test_path_that_is_a_file_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "model.padl"
    target.write_text("not a directory")
    with pytest.raises(FileExistsError, match="is a file"):
        padlc.save(_pipeline(), target, force_overwrite=True)
    with pytest.raises(ArtifactError, match="is a file"):
        padlc.load(target)


@pytest.mark.skipif(
    hasattr(os, "geteuid") and os.geteuid() == 0, reason="root ignores directory permissions"
)
def test_no_permission_to_write_is_a_clear_error(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(PermissionError, match="no permission to write"):
            padlc.save(_pipeline(), locked / "model")
    finally:
        locked.chmod(0o700)


def test_truncated_weights_are_refused_naming_the_file(artifact: Path) -> None:
    weights = artifact / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:-10])
    with pytest.raises(ArtifactError, match=r"weights\.safetensors") as info:
        padlc.load(artifact)
    assert info.value.file == "weights.safetensors"


def test_edited_module_is_refused_before_it_runs(artifact: Path, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    module = artifact / "pipeline.py"
    module.write_text(module.read_text().replace("\n\n", f"\nopen({str(marker)!r}, 'w')\n", 1))
    with pytest.raises(ArtifactError, match=r"pipeline\.py"):
        padlc.load(artifact)
    assert not marker.exists()


def test_deleted_data_file_is_refused(tmp_path: Path) -> None:
    table = padlc.value(list(range(5)))

    @transform
    def look(i):
        return table[i]

    path = padlc.save(look, tmp_path / "data")
    data_files = list((path / "data").iterdir())
    assert data_files
    data_files[0].unlink()
    with pytest.raises(ArtifactError, match="missing"):
        padlc.load(path)


def test_manifest_that_is_not_json_is_refused(artifact: Path) -> None:
    (artifact / "manifest.json").write_text("{not json")
    with pytest.raises(ArtifactError, match="not valid JSON"):
        padlc.load(artifact)


def test_unknown_format_version_is_refused(artifact: Path) -> None:
    manifest = json.loads((artifact / "manifest.json").read_text())
    manifest["format_version"] = 99
    (artifact / "manifest.json").write_text(encode_manifest(manifest))
    with pytest.raises(ArtifactError, match="format version 99"):
        padlc.load(artifact)


def test_unlisted_module_is_refused(artifact: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy.padl"
    shutil.copytree(artifact, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["module"] = "other.py"
    (copy / "manifest.json").write_text(encode_manifest(manifest))
    (copy / "other.py").write_text("raise SystemExit('must not run')\n")
    with pytest.raises(ArtifactError, match="not list"):
        padlc.load(copy, trust_code=True)


def test_pd_save_is_padlc_save(tmp_path: Path) -> None:
    path = _pipeline().pd_save(str(tmp_path / "m"))
    assert Path(path).name == "m.padl" and padlc.load(path) is not None


def test_every_file_and_directory_is_readable_by_others(artifact: Path) -> None:
    # weights.safetensors comes from safetensors, which creates its files 0o600
    entries = [artifact, *artifact.rglob("*")]
    assert "weights.safetensors" in {e.name for e in entries}
    for entry in entries:
        assert entry.stat().st_mode & 0o004, entry  # world-readable


def _built_manifest(**changes: object) -> Any:
    """A version-3 built manifest without a lineage whose forward reads shared weights."""
    from padl_runtime.manifest import (
        BackendEntry,
        CompiledOnly,
        FileEntry,
        ForwardSection,
        Manifest,
        ModeStages,
        StageLayout,
    )

    files = tuple(FileEntry(f, "0" * 64, 1) for f in ("f.pt2", "f.json", "stages.py"))
    fields: dict[str, Any] = {
        "padlc_version": "0.1.0",
        "kind": "built",
        "pipeline": "p",
        "module": "",
        "stages": StageLayout("a", "b", "c", True, True),
        "files": files,
        "forward": ForwardSection(
            backends=(BackendEntry("export", ("f.pt2", "f.json"), "cpu", weights="f.json"),),
            stage_module="stages.py",
            graph_source="",
            inputs=({"name": "input_0", "dtype": "float32", "shape": ["batch", 2]},),
            outputs=({"name": "output_0", "dtype": "float32", "shape": ["batch", 2]},),
            input_spec={"t": "tensor"},
            output_spec={"t": "tensor"},
            modes={"infer": ModeStages(), "eval": ModeStages(unavailable="why")},
        ),
        "without_lineage": "compiled-only",
        "compiled_only": (CompiledOnly("<Net instance>", "m.py:3", "cannot be captured"),),
    }
    return Manifest(**{**fields, **changes})


def test_version_3_fields_survive_a_round_trip_through_json() -> None:
    from padl_runtime.manifest import Manifest

    manifest = _built_manifest()
    assert Manifest.from_dict(json.loads(manifest.to_json())) == manifest


def test_a_version_2_manifest_still_reads_with_both_modes_running_the_same_stages() -> None:
    from padl_runtime.manifest import Manifest, ModeStages

    data = json.loads(_built_manifest(module="stages.py").to_json())
    data["format_version"] = 2
    for key in ("without_lineage", "compiled_only"):
        del data[key]
    del data["forward"]["modes"]
    data["forward"]["backends"][0].pop("weights")
    manifest = Manifest.from_dict(data)
    assert manifest.forward is not None
    assert manifest.forward.mode("eval") == manifest.forward.mode("infer") == ModeStages()
    assert manifest.without_lineage == "" and manifest.compiled_only == ()


def test_a_built_manifest_without_a_lineage_must_say_why() -> None:
    from padl_runtime.manifest import Manifest

    data = json.loads(_built_manifest().to_json())
    data["without_lineage"] = ""
    with pytest.raises(ArtifactError, match="'without_lineage' must say why"):
        Manifest.from_dict(data)


def test_a_weights_map_that_is_not_one_of_the_backends_files_is_refused() -> None:
    from padl_runtime.manifest import Manifest

    data = json.loads(_built_manifest().to_json())
    data["forward"]["backends"][0]["weights"] = "stages.py"
    with pytest.raises(ArtifactError, match=r"weights' names 'stages.py', which is not one"):
        Manifest.from_dict(data)
