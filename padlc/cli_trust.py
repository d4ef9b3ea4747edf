"""The trust commands of the command line: ``padlc trust``, ``padlc sign``, ``padlc keygen``, and
what ``padlc inspect`` says about trust and shows of the code (argument parsing and printing only;
the work is in :mod:`padl_runtime.trust`). None of them runs any of an artifact's code."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from padl_runtime.artifact import Artifact
from padl_runtime.errors import ArtifactError
from padl_runtime.trust import (
    UntrustedArtifactError,
    fingerprint,
    generate_key,
    remember,
    require_trust,
    sign,
    trust_store,
)

__all__ = ["code_text", "configure_keygen", "configure_sign", "configure_trust", "trust_text"]


def trust_text(artifact: Artifact) -> str:
    """One line: whether loading the artifact may run its code here, and why."""
    try:
        trust = require_trust(artifact, [(artifact.manifest.module, "python")])
    except UntrustedArtifactError:
        return (
            "trusted: no (not written by you here, not signed by a key you trust): loading runs "
            f"its code only with trust_code=True; `padlc trust {artifact.root}` after reading it"
        )
    how = {
        "store": f"yes (written or trusted by you on this machine: {trust_store()})",
        "signature": f"yes (signed by {trust.key})",
    }
    return "trusted: " + how.get(trust.how, trust.how)


def code_text(artifact: Artifact) -> str:
    """Every Python file the manifest lists, verified, with a header each (nothing is run)."""
    parts = []
    for entry in artifact.manifest.files:
        if entry.path.endswith(".py"):
            source = artifact.text(entry.path)
            parts.append(
                f"# ===== {entry.path} ({entry.size} bytes, sha256 {entry.sha256[:16]}…)\n{source}"
            )
    return "\n".join(parts) if parts else "(no Python files)"


# -- padlc trust ----------------------------------------------------------------------------------
def configure_trust(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("artifact", help="a .padl directory whose code you have read")


def run_trust(args: argparse.Namespace) -> int:
    try:
        artifact = Artifact.open(args.artifact)
        for entry in artifact.manifest.files:  # only an intact artifact is trusted
            artifact.read(entry.path, keep=False)
        remember(artifact, how="padlc trust")
    except (ArtifactError, OSError) as exc:
        print(f"padlc trust: {exc}", file=sys.stderr)
        return 1
    print(
        f"trusted {artifact.root} (manifest sha256 {artifact.manifest_sha256}) in {trust_store()}:"
        " it loads without trust_code for you from now on, as long as it is not changed"
    )
    return 0


# -- padlc sign -----------------------------------------------------------------------------------
def configure_sign(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("artifact", help="the .padl directory to sign")
    parser.add_argument(
        "--key", required=True, help="your ed25519 private key (PEM; `padlc keygen` makes one)"
    )


def run_sign(args: argparse.Namespace) -> int:
    try:
        written = sign(args.artifact, args.key)
    except (ArtifactError, OSError, ValueError, TypeError) as exc:
        print(f"padlc sign: {exc}", file=sys.stderr)
        return 1
    print(
        f"signed {Path(args.artifact)}: {written}. Whoever lists your public key in "
        "PADL_TRUSTED_KEYS (or ~/.config/padl/trusted-keys/) loads it without trust_code."
    )
    return 0


# -- padlc keygen ---------------------------------------------------------------------------------
def configure_keygen(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "path", help="where to write the private key (the public key goes to PATH.pub)"
    )


def run_keygen(args: argparse.Namespace) -> int:
    from cryptography.hazmat.primitives import serialization

    try:
        private, public = generate_key(args.path)
    except OSError as exc:
        print(f"padlc keygen: {exc}", file=sys.stderr)
        return 1
    key = serialization.load_pem_public_key(public.read_bytes())
    print(
        f"wrote {private} (private: keep it secret) and {public} (public, {fingerprint(key)}): "
        f"sign with `padlc sign MODEL.padl --key {private}`; others trust {public.name}."
    )
    return 0
