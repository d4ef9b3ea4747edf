"""Whether an artifact's code may run: the trust check made before loading executes anything.

Loading a ``.padl`` artifact can execute what it contains: its Python modules, a native library
(AOTInductor), or, if it were allowed, a pickle. None of that runs unless trust is established by
one of (see docs/security.md):

1. **written here by you**: ``padlc.save`` and ``padlc build`` record the SHA-256 of the
   manifest they wrote in your local trust store (``PADL_TRUST_STORE``, by default
   ``~/.local/share/padl/trusted-artifacts``); ``padlc trust PATH`` adds one you have read.
2. **asked for**: ``trust_code=True`` (``--trust-code``) for this one load.
3. **signed**: ``manifest.sig`` is a valid ed25519 signature of ``manifest.json`` by a public key
   you trust: given as ``trusted_keys=``, listed in ``PADL_TRUSTED_KEYS`` (files or directories,
   separated by ``os.pathsep``), or in ``~/.config/padl/trusted-keys/``. ``padlc sign`` signs.

The manifest lists every file with its SHA-256, and loaders run only those verified bytes, so
trusting the manifest's bytes is trusting everything the load runs.
"""

from __future__ import annotations

import base64
import datetime
import json
import os
import stat
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from padl_runtime.artifact import Artifact
from padl_runtime.errors import ArtifactError
from padl_runtime.manifest import MANIFEST_FILE, SIGNATURE_FILE

__all__ = [
    "Executes",
    "Trust",
    "UntrustedArtifactError",
    "generate_key",
    "remember",
    "require_trust",
    "sign",
    "trust_store",
    "trusted_key_files",
]

#: What loading a file runs: nothing but data (``nothing``), Python code, native code (a shared
#: library), or a pickle (never loaded: listed so that the check can say so).
Executes = Literal["nothing", "python", "native", "pickle"]
_WHAT = {"python": "Python code", "native": "native code", "pickle": "a pickle"}
KeyLike = Any  # a path to a PEM public key, its PEM bytes, or an Ed25519PublicKey


class UntrustedArtifactError(ArtifactError):
    """Loading would run an artifact's code, and nothing establishes that it may (it was not
    written here by this user, ``trust_code`` was not given, no trusted key signed it)."""


@dataclass(frozen=True, slots=True)
class Trust:
    """How trust in an artifact was established: ``"store"``, ``"trust_code"``, ``"signature"``
    (``key`` names the key), ``"pinned"`` (its manifest is the one trusted in another process),
    or ``"not needed"`` (loading runs no code of it)."""

    how: str
    key: str = ""


def trust_store() -> Path:
    """The directory of trusted manifests: ``PADL_TRUST_STORE``, else
    ``$XDG_DATA_HOME/padl/trusted-artifacts`` (``~/.local/share/padl/trusted-artifacts``)."""
    configured = os.environ.get("PADL_TRUST_STORE")
    if configured:
        return Path(configured).expanduser()
    data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data_home) / "padl" / "trusted-artifacts"


def _private(directory: Path) -> bool:
    """Whether only this user can write the store (a store others can write proves nothing)."""
    if os.name != "posix":
        return True
    info = directory.stat()
    return info.st_uid == os.getuid() and not info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


def remember(
    artifact_or_manifest: Artifact | bytes, path: str | os.PathLike[str] = "", how: str = ""
) -> None:
    """Record a manifest (an artifact's ``manifest.json`` bytes) in the trust store: artifacts
    with exactly this manifest load without ``trust_code`` for this user from now on."""
    import hashlib

    if isinstance(artifact_or_manifest, Artifact):
        digest = artifact_or_manifest.manifest_sha256
        path = path or artifact_or_manifest.root
    else:
        digest = hashlib.sha256(artifact_or_manifest).hexdigest()
    store = trust_store()
    store.mkdir(parents=True, exist_ok=True, mode=0o700)
    record = json.dumps(
        {
            "path": str(path),
            "how": how,
            "trusted": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        }
    )
    handle, temporary = tempfile.mkstemp(prefix=".tmp-", dir=store)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(record + "\n")
        os.replace(temporary, store / digest)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _remembered(digest: str) -> bool:
    store = trust_store()
    try:
        return (store / digest).is_file() and _private(store)
    except OSError:
        return False


# -- signatures ----------------------------------------------------------------------------------
def _missing_key_places() -> list[Path]:
    """The entries of ``PADL_TRUSTED_KEYS`` that name nothing (a misspelt path trusts no key;
    the refusal says so)."""
    configured = os.environ.get("PADL_TRUSTED_KEYS") or ""
    places = [Path(p).expanduser() for p in configured.split(os.pathsep) if p]
    return [place for place in places if not place.exists()]


def trusted_key_files() -> list[Path]:
    """The public key files trusted by configuration: ``PADL_TRUSTED_KEYS`` (files or
    directories, ``os.pathsep``-separated), else ``$XDG_CONFIG_HOME/padl/trusted-keys/``."""
    configured = os.environ.get("PADL_TRUSTED_KEYS")
    if configured is not None:
        places = [Path(p).expanduser() for p in configured.split(os.pathsep) if p]
    else:
        config_home = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
        places = [Path(config_home) / "padl" / "trusted-keys"]
    files: list[Path] = []
    for place in places:
        if place.is_dir():
            files += sorted(
                p for p in place.iterdir() if p.is_file() and not p.name.startswith(".")
            )
        elif place.is_file():
            files.append(place)
    return files


def _public_key(key: KeyLike) -> Any:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    if isinstance(key, Ed25519PublicKey):
        return key
    data = key if isinstance(key, bytes) else Path(key).read_bytes()
    loaded: Any
    try:
        loaded = serialization.load_pem_public_key(data)
    except ValueError:
        loaded = serialization.load_ssh_public_key(data)
    if not isinstance(loaded, Ed25519PublicKey):
        raise ValueError(f"{key!r} is not an ed25519 public key")
    return loaded


def _raw(public_key: Any) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return bytes(
        public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    )


def fingerprint(public_key: Any) -> str:
    """``SHA256:<base64>`` of a public key's raw bytes (as ssh-keygen prints fingerprints)."""
    import hashlib

    digest = hashlib.sha256(_raw(public_key)).digest()
    return "SHA256:" + base64.b64encode(digest).decode("ascii").rstrip("=")


def generate_key(path: str | os.PathLike[str]) -> tuple[Path, Path]:
    """Write a new ed25519 private key to ``path`` (PEM, readable by you only) and its public key
    to ``path.pub``; returns both paths."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    private_path = Path(path)
    public_path = private_path.with_name(private_path.name + ".pub")
    if private_path.exists() or public_path.exists():
        raise FileExistsError(
            f"{private_path} or {public_path} exists already; choose another path."
        )
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    handle = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(handle, "wb") as out:
        out.write(pem)
    public_path.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return private_path, public_path


def sign(path: str | os.PathLike[str], private_key: str | os.PathLike[str]) -> Path:
    """Sign the artifact at ``path`` with the ed25519 private key in ``private_key`` (PEM):
    writes ``manifest.sig`` beside ``manifest.json`` and returns its path. The artifact's files
    are checked first, so only an intact artifact is signed."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    artifact = Artifact.open(path)
    for entry in artifact.manifest.files:
        artifact.read(entry.path, keep=False)
    key = serialization.load_pem_private_key(Path(private_key).read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{private_key} is not an ed25519 private key.")
    signature = {
        "algorithm": "ed25519",
        "signed": MANIFEST_FILE,
        "public_key": base64.b64encode(_raw(key.public_key())).decode("ascii"),
        "fingerprint": fingerprint(key.public_key()),
        "signature": base64.b64encode(key.sign(artifact.raw_manifest)).decode("ascii"),
    }
    target = artifact.root / SIGNATURE_FILE
    target.write_text(json.dumps(signature, indent=2) + "\n", encoding="utf-8")
    return target


def _signed_by(artifact: Artifact, keys: Sequence[Any]) -> str | None:
    """The fingerprint of the trusted key whose signature of the manifest is ``manifest.sig``."""
    from cryptography.exceptions import InvalidSignature

    signature_path = artifact.root / SIGNATURE_FILE
    if not keys or not signature_path.is_file() or signature_path.is_symlink():
        return None
    try:
        record = json.loads(signature_path.read_text(encoding="utf-8"))
        signature = base64.b64decode(record["signature"], validate=True)
        if record.get("algorithm") != "ed25519":
            return None
    except (OSError, ValueError, KeyError, TypeError):
        return None
    for key in keys:
        try:
            key.verify(signature, artifact.raw_manifest)
        except InvalidSignature:
            continue
        return fingerprint(key)
    return None


def _keys(trusted_keys: Iterable[KeyLike] | None) -> list[Any]:
    given = list(trusted_keys or ()) + list(trusted_key_files())
    keys = []
    for key in given:
        try:
            keys.append(_public_key(key))
        except (OSError, ValueError, TypeError) as exc:
            raise ValueError(f"Cannot use {key!r} as a trusted ed25519 public key: {exc}") from exc
    return keys


# -- the check -----------------------------------------------------------------------------------
def require_trust(
    artifact: Artifact,
    runs: Sequence[tuple[str, Executes]],
    *,
    trust_code: bool = False,
    trusted_keys: Iterable[KeyLike] | None = None,
    trusted_manifest: str | None = None,
) -> Trust:
    """Establish trust in ``artifact`` before loading runs ``runs`` (file, what loading it runs);
    an :class:`UntrustedArtifactError` saying why and what to do when nothing establishes it.

    ``trusted_manifest`` is the SHA-256 of a manifest trusted in another process (a Ray driver
    for its actors): it establishes trust when the artifact's manifest is exactly that one, and
    an artifact whose manifest is another one is refused, whether it would run code or not.
    """
    if trusted_manifest is not None and trusted_manifest != artifact.manifest_sha256:
        raise ArtifactError(
            f"{artifact.root}: {MANIFEST_FILE} is not the one that was trusted where this load "
            f"was asked for (its SHA-256 is {artifact.manifest_sha256[:16]}…, the trusted one's "
            f"{trusted_manifest[:16]}…): the artifact at this path was replaced or edited, or "
            "this machine holds another copy. Give every machine the same artifact.",
            path=str(artifact.root),
            file=MANIFEST_FILE,
        )
    code = [(file, what) for file, what in runs if what != "nothing"]
    pickled = [file for file, what in code if what == "pickle"]
    if pickled:
        raise ArtifactError(
            f"{artifact.root}: loading {', '.join(pickled)} would unpickle it, which padl never "
            "does (a pickle runs arbitrary code). Rebuild the artifact with the installed padlc.",
            path=str(artifact.root),
            file=pickled[0],
        )
    if not code:
        return Trust("not needed")
    if trust_code:
        return Trust("trust_code")
    if trusted_manifest is not None:
        return Trust("pinned")
    if _remembered(artifact.manifest_sha256):
        return Trust("store")
    keys = _keys(trusted_keys)
    signer = _signed_by(artifact, keys)
    if signer is not None:
        return Trust("signature", signer)
    listing = ", ".join(f"{file} ({_WHAT[what]})" for file, what in code)
    signed = (artifact.root / SIGNATURE_FILE).is_file()
    signature = (
        f"Its {SIGNATURE_FILE} is not a valid signature by any of the {len(keys)} key(s) you trust."
        if signed
        else "It is not signed by a key you trust."
    )
    missing = _missing_key_places()
    if missing:
        signature += (
            f" (PADL_TRUSTED_KEYS names {', '.join(str(m) for m in missing)}, which does not "
            "exist: a public key file, or a folder of them, is expected.)"
        )
    raise UntrustedArtifactError(
        f"{artifact.root} was not written by you on this machine (it is not in your trust store "
        f"{trust_store()}). {signature} Loading it would run the code it contains: {listing}.\n"
        f"Read that code first, without running it: padlc inspect {artifact.root} --code\n"
        "Then, if you trust it: pass trust_code=True to this load (--trust-code on the command "
        f"line), or run `padlc trust {artifact.root}` once to remember it, or have it signed "
        "(`padlc sign`) by a key listed in PADL_TRUSTED_KEYS or ~/.config/padl/trusted-keys/.",
        path=str(artifact.root),
        file=code[0][0],
    )
