"""Signatures of model bundles, with the OpenSSF `model-signing` library and an elliptic-curve key pair
(works offline, no Sigstore account).

`augtrain sign RUN --key private.pem` writes model/model.sig over every file of the bundle folder;
with a public key configured (`--public-key` or AUGTRAIN_PUBLIC_KEY), every command that loads a
bundle refuses one that is unsigned, signed by another key, or changed after signing.
"""

from __future__ import annotations

from pathlib import Path

from augtrain.errors import BadInput, clip

SIGNATURE = "model.sig"


class BundleError(BadInput):
    """A bundle that is missing, incomplete, malformed or altered (here, where the command line can catch it
    without importing torch)."""


class SignatureError(BadInput):
    """A bundle whose signature is missing, from another key, or does not cover its files."""


def _hashing():
    import model_signing

    # every file counts (no git-file exemptions) except the signature itself
    return model_signing.hashing.Config().set_ignored_paths(paths=[SIGNATURE], ignore_git_paths=False)


def sign_bundle(folder: Path, private_key: Path, password: str | None = None) -> Path:
    """Sign every file of the bundle `folder` with `private_key` (PEM); returns the signature file."""
    import model_signing

    signature = folder / SIGNATURE
    try:
        config = model_signing.signing.Config().set_hashing_config(_hashing())
        config.use_elliptic_key_signer(private_key=private_key, password=password).sign(folder, signature)
    except (ValueError, TypeError, OSError) as exc:
        raise SignatureError(f"{private_key}: cannot sign with this key: {clip(exc, 200)}") from None
    return signature


def verify_bundle(folder: Path, public_key: Path) -> None:
    """Refuse the bundle `folder` unless `public_key` verifies its signature over all of its files."""
    import model_signing

    if not public_key.is_file():
        raise SignatureError(f"{public_key}: no such public key file")
    signature = folder / SIGNATURE
    if not signature.is_file() or signature.is_symlink():
        raise SignatureError(f"{folder}: not signed (no {SIGNATURE}), and a public key is configured; refusing to load")
    try:
        config = model_signing.verifying.Config().use_elliptic_key_verifier(public_key=public_key)
        config.set_hashing_config(_hashing()).verify(folder, signature)
    except Exception as exc:  # the library raises ValueError, JSON and protobuf errors for a forged signature
        raise SignatureError(f"{folder}: signature check failed, refusing to load: {clip(exc, 300)}") from None
