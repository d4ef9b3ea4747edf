"""Loading runs an artifact's code only when trusted: written here by this user (the trust store),
``trust_code=True``, or signed by a trusted ed25519 key."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import padl_runtime
import padlc
from padl_runtime.load import establish_trust
from padl_runtime.trust import UntrustedArtifactError, generate_key, sign
from padlc import batch, transform, unbatch


@transform
def to_tensor(x):
    return torch.tensor(x, dtype=torch.float32)


def _pipeline() -> padlc.Transform:
    torch.manual_seed(0)
    return to_tensor >> batch >> transform(torch.nn.Linear(3, 2)) >> unbatch


@pytest.fixture
def foreign_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Another user's trust store: nothing this session wrote is in it."""
    store = tmp_path / "other-store"
    monkeypatch.setenv("PADL_TRUST_STORE", str(store))
    return store


def test_an_artifact_written_here_loads_without_trust_code(built: Path) -> None:
    assert padl_runtime.load(built).infer_apply([1.0, 2.0, 3.0]).shape == (2,)


def test_an_artifact_from_elsewhere_is_refused_naming_what_would_run(
    built: Path, foreign_store: Path
) -> None:
    with pytest.raises(UntrustedArtifactError) as raised:
        padl_runtime.load(built)
    message = str(raised.value)
    assert "stages.py (Python code)" in message
    assert f"padlc inspect {built} --code" in message
    assert "trust_code=True" in message and "padlc trust" in message and "padlc sign" in message


def test_a_saved_artifact_from_elsewhere_is_refused_by_padlc_load(
    tmp_path: Path, foreign_store: Path
) -> None:
    saved = tmp_path / "saved.padl"
    with pytest.MonkeyPatch.context() as patch:  # saved by "this" user into its own store
        patch.setenv("PADL_TRUST_STORE", str(tmp_path / "mine"))
        padlc.save(_pipeline(), saved)
        assert padlc.load(saved) is not None
    (saved / "pipeline.py").stat()
    with pytest.raises(UntrustedArtifactError, match=r"pipeline\.py"):
        padlc.load(saved)
    assert padlc.load(saved, trust_code=True).infer_apply([1.0, 2.0, 3.0]).shape == (2,)


def test_untrusted_code_does_not_run(tmp_path: Path, foreign_store: Path) -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PADL_TRUST_STORE", str(tmp_path / "mine"))
        saved = padlc.save(_pipeline(), tmp_path / "saved")
    marker = tmp_path / "ran"
    source = (saved / "pipeline.py").read_text()
    (saved / "pipeline.py").write_text(f"open({str(marker)!r}, 'w').close()\n" + source)
    _rehash(saved)
    with pytest.raises(UntrustedArtifactError):
        padlc.load(saved)
    assert not marker.exists()


def _rehash(root: Path) -> None:
    """What an attacker who edits files does: recompute the manifest's hashes and digest."""
    import dataclasses

    from padl_runtime.manifest import file_entry, read_manifest

    manifest = read_manifest(root)
    files = tuple(file_entry(root, entry.path) for entry in manifest.files)
    (root / "manifest.json").write_text(dataclasses.replace(manifest, files=files).to_json())


def test_padlc_trust_remembers_an_artifact(built: Path, foreign_store: Path) -> None:
    from padlc.cli import main

    assert main(["trust", str(built)]) == 0
    assert padl_runtime.load(built).infer_apply([1.0, 2.0, 3.0]).shape == (2,)


def test_an_edited_trusted_artifact_is_no_longer_trusted(tmp_path: Path) -> None:
    saved = padlc.save(_pipeline(), tmp_path / "saved")
    (saved / "pipeline.py").write_text((saved / "pipeline.py").read_text() + "\n# edited\n")
    _rehash(saved)
    with pytest.raises(UntrustedArtifactError):
        padlc.load(saved)


def test_a_signature_by_a_trusted_key_establishes_trust(
    built: Path, tmp_path: Path, foreign_store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    copy = Path(shutil.copytree(built, tmp_path / "copy.padl"))
    private, public = generate_key(tmp_path / "key")
    sign(copy, private)
    with pytest.raises(UntrustedArtifactError, match="not a valid signature"):
        padl_runtime.load(copy)  # signed, but the key is not trusted
    assert padl_runtime.load(copy, trusted_keys=[public]).backend.name == "export"
    monkeypatch.setenv("PADL_TRUSTED_KEYS", str(public))  # configured, as a server would be
    assert padl_runtime.load(copy).backend.name == "export"


def test_a_trusted_keys_setting_naming_nothing_is_named_in_the_refusal(
    built: Path, tmp_path: Path, foreign_store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    copy = Path(shutil.copytree(built, tmp_path / "copy.padl"))
    private, _ = generate_key(tmp_path / "key")
    sign(copy, private)
    misspelt = tmp_path / "key.pbu"
    monkeypatch.setenv("PADL_TRUSTED_KEYS", str(misspelt))
    with pytest.raises(UntrustedArtifactError) as raised:
        padl_runtime.load(copy)
    assert f"PADL_TRUSTED_KEYS names {misspelt}, which does not exist" in str(raised.value)


def test_a_signature_does_not_cover_an_edited_manifest(
    built: Path, tmp_path: Path, foreign_store: Path
) -> None:
    copy = Path(shutil.copytree(built, tmp_path / "copy.padl"))
    private, public = generate_key(tmp_path / "key")
    sign(copy, private)
    (copy / "stages.py").write_text((copy / "stages.py").read_text() + "\nimport os\n")
    _rehash(copy)
    with pytest.raises(UntrustedArtifactError):
        padl_runtime.load(copy, trusted_keys=[public])


@pytest.mark.slow  # a fresh process
def test_padlc_sign_and_keygen_on_the_command_line(
    built: Path, tmp_path: Path, foreign_store: Path
) -> None:
    copy = Path(shutil.copytree(built, tmp_path / "copy.padl"))
    padlc_cli = [sys.executable, "-m", "padlc"]
    run = lambda *args: subprocess.run([*padlc_cli, *args], capture_output=True, text=True)  # noqa: E731
    assert run("keygen", str(tmp_path / "k")).returncode == 0
    assert (tmp_path / "k").stat().st_mode & 0o077 == 0
    signed = run("sign", str(copy), "--key", str(tmp_path / "k"))
    assert signed.returncode == 0, signed.stderr
    loaded = padl_runtime.load(copy, trusted_keys=[tmp_path / "k.pub"])
    assert loaded.infer_apply([1.0, 2.0, 3.0]).shape == (2,)


def test_inspect_shows_the_code_without_running_it(built: Path, foreign_store: Path) -> None:
    from padlc.cli import inspect_text

    text = inspect_text(built, code=True)
    assert "trusted: no" in text
    assert "# ===== stages.py" in text and "def preprocess" in text


def test_an_aoti_forward_is_native_code_and_needs_trust() -> None:
    from padl_runtime.backends import LOADERS

    assert {name: loader.executes for name, loader in LOADERS.items()} == {
        "aoti": "native",
        "eager": "python",
        "export": "nothing",
        "onnx": "nothing",
        "torchscript": "nothing",
    }


def test_the_trust_store_of_another_user_is_not_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = tmp_path / "shared-store"
    monkeypatch.setenv("PADL_TRUST_STORE", str(store))
    saved = padlc.save(_pipeline(), tmp_path / "saved")
    os.chmod(store, 0o777)  # anyone could have written an entry
    with pytest.raises(UntrustedArtifactError):
        padlc.load(saved)


# -- trust established in one process, used in another (Ray actors on other machines) ----------
def test_trust_established_here_loads_elsewhere_by_the_manifest_digest(
    built: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    digest = establish_trust(built)  # here: built by this session, in its trust store
    monkeypatch.setenv("PADL_TRUST_STORE", str(tmp_path / "elsewhere"))  # another machine
    with pytest.raises(UntrustedArtifactError):
        padl_runtime.load(built)
    pipeline = padl_runtime.load(built, trusted_manifest=digest)
    assert pipeline.infer_apply([1.0, 2.0, 3.0]).shape == (2,)


def test_another_manifest_than_the_trusted_one_is_refused(built: Path) -> None:
    with pytest.raises(padl_runtime.ArtifactError, match="not the one that was trusted"):
        padl_runtime.load(built, trusted_manifest="0" * 64)


def test_establish_trust_refuses_an_untrusted_artifact_unless_trust_code(
    built: Path, foreign_store: Path
) -> None:
    with pytest.raises(UntrustedArtifactError, match=r"stages\.py \(Python code\)"):
        establish_trust(built)
    assert (
        establish_trust(built, trust_code=True)
        == hashlib.sha256((built / "manifest.json").read_bytes()).hexdigest()
    )
