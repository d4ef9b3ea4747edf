"""An artifact is exactly its manifest: only listed, verified bytes inside the directory are run
or read; nothing is imported from the directory, no bytecode is read or written, nothing stays in
``sys.modules`` once the loaded pipeline is gone."""

from __future__ import annotations

import dataclasses
import gc
import io
import json
import pickle
import py_compile
import shutil
import sys
import zipfile
from pathlib import Path

import pytest
import torch

import padl_runtime
import padlc
from padl_runtime.manifest import encode_manifest, file_entry, read_manifest
from padlc import ArtifactError, batch, transform, unbatch


@transform
def to_tensor(x):
    return torch.tensor(x, dtype=torch.float32)


INPUTS = [[1.0, 2.0, 3.0], [0.0, 1.0, 0.0]]


def _pipeline() -> padlc.Transform:
    torch.manual_seed(0)
    return to_tensor >> batch >> transform(torch.nn.Linear(3, 2)) >> unbatch


@pytest.fixture
def copy(built: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(built, tmp_path / "copy.padl"))


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    return padlc.save(_pipeline(), tmp_path / "saved")


def _rewrite(root: Path, edit) -> None:
    """Edit the manifest's fields and write it back with a correct digest (as an attacker could)."""
    data = json.loads((root / "manifest.json").read_text())
    edit(data)
    (root / "manifest.json").write_text(encode_manifest(data))


def _rehash(root: Path) -> None:
    manifest = read_manifest(root)
    files = tuple(file_entry(root, e.path) for e in manifest.files if (root / e.path).exists())
    (root / "manifest.json").write_text(dataclasses.replace(manifest, files=files).to_json())


def test_a_planted_pyc_is_never_run(saved: Path, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    evil = tmp_path / "evil.py"
    evil.write_text(f"open({str(marker)!r}, 'w').close()\n")
    cache = saved / "__pycache__" / f"pipeline.{sys.implementation.cache_tag}.pyc"
    cache.parent.mkdir()
    py_compile.compile(
        str(evil), cfile=str(cache), invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH
    )
    loaded = padlc.load(saved)
    assert not marker.exists()
    assert loaded.infer_apply([1.0, 2.0, 3.0]).shape == (2,)


def test_loading_writes_no_bytecode_into_the_artifact(copy: Path, saved: Path) -> None:
    padlc.load(saved)
    padl_runtime.load(copy, trust_code=True)
    assert not list(saved.rglob("__pycache__")) and not list(copy.rglob("__pycache__"))


def test_a_package_beside_the_stage_module_does_not_shadow_it(copy: Path, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    (copy / "stages").mkdir()
    (copy / "stages" / "__init__.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    loaded = padl_runtime.load(copy, trust_code=True)
    assert loaded.infer_apply([1.0, 2.0, 3.0]).shape == (2,)
    assert not marker.exists()


def test_a_manifest_listing_no_files_is_refused(saved: Path) -> None:
    _rewrite(saved, lambda data: data.update(files=[]))
    with pytest.raises(ArtifactError, match="field 'module'"):
        padlc.load(saved, trust_code=True)


def test_a_backend_file_missing_from_the_manifest_is_refused(copy: Path) -> None:
    def drop(data: dict) -> None:
        data["files"] = [f for f in data["files"] if f["path"] != "forward/forward.pt2"]

    _rewrite(copy, drop)
    with pytest.raises(ArtifactError, match=r"forward\.backends\[0\]\.files\[0\]"):
        padl_runtime.load(copy, trust_code=True)


def test_removing_the_weights_and_their_entry_is_refused(saved: Path) -> None:
    (saved / "weights.safetensors").unlink()

    def drop(data: dict) -> None:
        data["files"] = [f for f in data["files"] if f["path"] != "weights.safetensors"]

    _rewrite(saved, drop)
    with pytest.raises(ArtifactError, match=r"lists no weights\.safetensors"):
        padlc.load(saved, trust_code=True)


def test_a_module_path_leaving_the_artifact_is_refused(saved: Path, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    (tmp_path / "outside_module.py").write_text(f"open({str(marker)!r}, 'w').close()\n")

    def point_outside(data: dict) -> None:
        entry = file_entry(tmp_path, "outside_module.py")
        data["files"].append(
            {"path": "../outside_module.py", "sha256": entry.sha256, "size": entry.size}
        )
        data["module"] = "../outside_module.py"

    _rewrite(saved, point_outside)
    with pytest.raises(ArtifactError, match="not a path inside the artifact"):
        padlc.load(saved, trust_code=True)
    assert not marker.exists()


def test_a_data_file_read_from_outside_the_artifact_is_refused(saved: Path, tmp_path: Path) -> None:
    (tmp_path / "outside.json").write_text("[1, 2, 3]")
    with (saved / "pipeline.py").open("a") as code:
        code.write(
            '\nfrom padl_runtime.values import load_json\nload_json(__file__, "../outside.json")\n'
        )

    def relist(data: dict) -> None:
        entry = file_entry(saved, "pipeline.py")
        for listed in data["files"]:
            if listed["path"] == "pipeline.py":
                listed.update(sha256=entry.sha256, size=entry.size)

    _rewrite(saved, relist)
    with pytest.raises(ArtifactError, match="lies outside the artifact"):
        padlc.load(saved, trust_code=True)


def test_a_listed_file_that_is_a_link_out_of_the_artifact_is_refused(
    saved: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside.py"
    shutil.copy(saved / "pipeline.py", outside)
    (saved / "pipeline.py").unlink()
    (saved / "pipeline.py").symlink_to(outside)
    with pytest.raises(ArtifactError, match="symbolic link"):
        padlc.load(saved, trust_code=True)


def test_a_data_file_not_listed_is_not_read(saved: Path) -> None:
    (saved / "weights.safetensors").write_bytes(b"edited")
    with pytest.raises(ArtifactError, match=r"weights\.safetensors"):
        padlc.load(saved)


def test_a_pickled_weight_in_the_export_program_is_refused(copy: Path, tmp_path: Path) -> None:
    program = copy / "forward" / "forward.pt2"
    archive = zipfile.ZipFile(io.BytesIO(program.read_bytes()))
    rewritten = io.BytesIO()
    marker = tmp_path / "ran"
    with zipfile.ZipFile(rewritten, "w") as out:
        for info in archive.infolist():
            data = archive.read(info.filename)
            if info.filename.endswith("weights_config.json"):
                config = json.loads(data)
                first = next(iter(config["config"].values()))
                first["use_pickle"] = True
                data = json.dumps(config).encode()
            if info.filename.endswith("/weights/weight_0"):
                data = pickle.dumps(_Marker(str(marker)))
            out.writestr(info, data)
    program.write_bytes(rewritten.getvalue())
    _rehash(copy)
    with pytest.raises(ArtifactError, match="use_pickle"):
        padl_runtime.load(copy, trust_code=True)
    assert not marker.exists()


class _Marker:
    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_no_module_of_a_loaded_artifact_stays_once_it_is_dropped(built: Path, saved: Path) -> None:
    gc.collect()  # artifacts other tests dropped (cycles) leave before this test measures
    before = {name for name in sys.modules if name.startswith("_padl_artifact_")}
    for _ in range(3):
        compiled = padl_runtime.load(built)
        lineage = padlc.load(saved)
        assert (
            compiled.infer_apply([1.0, 2.0, 3.0]).shape
            == lineage.infer_apply([1.0, 2.0, 3.0]).shape
        )
    del compiled, lineage
    gc.collect()
    assert {name for name in sys.modules if name.startswith("_padl_artifact_")} == before


def test_a_worker_s_re_import_is_verified(copy: Path) -> None:
    loaded = padl_runtime.load(copy, trust_code=True)
    assert loaded.preprocess is not None
    sent = pickle.dumps(loaded.preprocess)
    again = pickle.loads(sent)  # what a spawned DataLoader worker does
    assert torch.equal(again(INPUTS[0]), loaded.preprocess(INPUTS[0]))
    (copy / "stage_code.py").write_text((copy / "stage_code.py").read_text() + "\nX = 1\n")
    with pytest.raises(ArtifactError, match=r"stage_code\.py"):
        pickle.loads(sent)
    _rehash(copy)
    with pytest.raises(ArtifactError, match="changed since the artifact was loaded"):
        pickle.loads(sent)


def test_a_traceback_through_artifact_code_shows_the_verified_line(copy: Path) -> None:
    import traceback

    loaded = padl_runtime.load(copy, trust_code=True)
    (copy / "stages.py").write_text("# replaced on disk after loading\n")
    with pytest.raises(Exception) as raised:
        loaded.infer_apply("not a list of numbers")
    text = "".join(traceback.format_exception(raised.value))
    assert "stages.py" in text and "replaced on disk" not in text
