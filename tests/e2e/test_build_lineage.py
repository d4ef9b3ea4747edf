"""A built artifact keeps the lineage `padlc.load` rebuilds the trainable pipeline from, and stores
data its generated modules share (a vocabulary, the weights) once."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

import padlc
from padl_runtime.manifest import MANIFEST_FILE, encode_manifest, read_manifest
from tests.e2e import shared_data_code as code

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("lineage") / "shared.padl"
    return padlc.build(code.PIPELINE, target, inputs=code.INPUTS, backend=["eager", "export"]).path


def _outputs_in_a_fresh_process(module: str, load: str, built: Path) -> list[object]:
    """``infer_apply`` of every example, by the pipeline ``module.load`` rebuilds from ``built``
    in a fresh process started in another directory."""
    script = (
        f"import json, sys, {module}\n"
        f"p = {module}.{load}\n"
        "print(json.dumps([p.infer_apply(x) for x in json.loads(sys.argv[2])]))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(built), json.dumps(code.INPUTS)],
        capture_output=True, text=True, check=False, cwd=Path("/"),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)


def test_padlc_load_rebuilds_a_built_pipeline_in_a_fresh_process(built: Path) -> None:
    expected = [code.PIPELINE.infer_apply(x) for x in code.INPUTS]
    assert _outputs_in_a_fresh_process("padlc", "load(sys.argv[1])", built) == expected


def test_the_manifest_names_the_lineage_module(built: Path) -> None:
    assert read_manifest(built).module == "pipeline.py"


def test_data_the_generated_modules_share_is_stored_once(built: Path) -> None:
    digests: dict[str, list[str]] = {}
    for path in sorted(built.rglob("*")):
        if path.is_file() and path.suffix in (".json", ".safetensors", ".npy"):
            if path.name == MANIFEST_FILE:
                continue
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            digests.setdefault(digest, []).append(path.relative_to(built).as_posix())
    assert "data/VOCABULARY.json" in {p for paths in digests.values() for p in paths}
    assert [paths for paths in digests.values() if len(paths) > 1] == []


def test_the_eager_forward_reads_the_shared_files_in_a_fresh_process(built: Path) -> None:
    expected = [code.PIPELINE.infer_apply(x) for x in code.INPUTS]
    load = "load(sys.argv[1], backend='eager')"
    assert _outputs_in_a_fresh_process("padl_runtime", load, built) == expected


def test_a_cli_build_records_where_the_pipeline_came_from(tmp_path: Path) -> None:
    source = "tests.e2e.shared_data_code:PIPELINE"
    target = tmp_path / "cli.padl"
    build = subprocess.run(
        [
            sys.executable, "-m", "padlc", "build", source, "-o", str(target),
            "--inputs", "tests.e2e.shared_data_code:INPUTS", "--backend", "eager",
        ],
        capture_output=True, text=True, check=False, cwd=REPO,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr
    inspect = subprocess.run(
        [sys.executable, "-m", "padlc", "inspect", str(target)],
        capture_output=True, text=True, check=False, cwd=REPO,
    )  # fmt: skip
    assert f"from: {source}" in inspect.stdout.splitlines()
    assert read_manifest(target).module == "pipeline.py"


def test_an_older_build_whose_module_field_holds_its_source_still_loads(
    built: Path, tmp_path: Path
) -> None:
    import shutil

    older = Path(shutil.copytree(built, tmp_path / "older.padl"))
    manifest = json.loads((older / MANIFEST_FILE).read_text(encoding="utf-8"))
    manifest["module"] = "tests.e2e.shared_data_code:PIPELINE"  # what builds wrote before
    manifest["format_version"] = 1
    (older / MANIFEST_FILE).write_text(encode_manifest(manifest), encoding="utf-8")
    loaded = padlc.load(older, trust_code=True)  # written by an older padlc, before trust
    assert [loaded.infer_apply(x) for x in code.INPUTS] == [
        code.PIPELINE.infer_apply(x) for x in code.INPUTS
    ]
