"""The public surface is pinned: adding or removing a name is a deliberate change."""

import subprocess
import sys

import pytest

import padl_runtime
import padlc


def test_padlc_all_is_pinned():
    assert sorted(padlc.__all__) == sorted(
        [
            "DEFAULT_BATCH_SIZE", "ArtifactError", "Batchify", "BuildError", "BuildResult",
            "Compose", "IfEval", "IfInMode", "IfInfer", "IfTrain", "Identity", "LoweringError",
            "Map", "ModeError", "Outputs", "PadlcError", "Parallel", "Pipeline", "Rollout",
            "SaveError", "StageError", "Transform", "Try", "Unbatchify", "UntrustedArtifactError",
            "WrongDeviceError", "__version__", "batch", "build", "group", "identity", "load",
            "param", "same", "save", "serializer", "transform", "unbatch", "value",
        ]
    )  # fmt: skip
    for name in padlc.__all__:
        assert hasattr(padlc, name), name


def test_padl_runtime_all_is_pinned():
    assert sorted(padl_runtime.__all__) == sorted(
        [
            "FORMAT_VERSION", "ArtifactError", "BackendUnavailableError", "CompiledPipeline",
            "ItemError", "Manifest", "ModeUnavailableError", "UntrustedArtifactError",
            "__version__", "load", "read_manifest",
        ]
    )  # fmt: skip
    for name in padl_runtime.__all__:
        assert hasattr(padl_runtime, name), name


@pytest.mark.slow  # a fresh process
def test_padl_runtime_does_not_import_padlc():
    code = (
        "import sys, padl_runtime, padl_runtime.executor, padl_runtime.collate, "
        "padl_runtime.manifest\n"
        "import pkgutil, importlib\n"
        "for m in pkgutil.iter_modules(padl_runtime.__path__):\n"
        "    importlib.import_module('padl_runtime.' + m.name)\n"
        "bad = [m for m in sys.modules if m == 'padlc' or m.startswith('padlc.')]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_error_tree_has_one_root():
    for name in (
        "StageError",
        "ModeError",
        "SaveError",
        "LoweringError",
        "BuildError",
        "WrongDeviceError",
    ):
        assert issubclass(getattr(padlc, name), padlc.PadlcError)
    assert padlc.ArtifactError is padl_runtime.ArtifactError
    assert padlc.UntrustedArtifactError is padl_runtime.UntrustedArtifactError
