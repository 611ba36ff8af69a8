"""Signing published versions, so a box can load only the models its owner
made: an Ed25519 signature over the exact bytes of a version's metadata.json
(which records every file's sha256), written beside it as signature.ed25519
(64 raw bytes). matid-server --trusted_model_keys PUB.pem loads only versions
one of its keys verifies. Keys are PEM files, made with Debian's openssl:

    openssl genpkey -algorithm ed25519 -out signing.pem      # keep it private
    openssl pkey -in signing.pem -pubout -out signing.pub.pem  # give it to the box
"""
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

SIGNATURE_FILE = "signature.ed25519"


def load_signing_key(path: str) -> Ed25519PrivateKey:
    """The Ed25519 private key in PEM at `path`; ValueError naming --signing_key."""
    try:
        with open(path, "rb") as f:
            key = serialization.load_pem_private_key(f.read(), password=None)
    except (OSError, ValueError, TypeError) as error:
        raise ValueError(f"--signing_key {path}: not a readable PEM private key ({error})")
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"--signing_key {path}: not an Ed25519 key (openssl genpkey "
                         "-algorithm ed25519 makes one)")
    return key


def sign(metadata: bytes, key: Ed25519PrivateKey) -> bytes:
    return key.sign(metadata)


def verifies(metadata: bytes, signature: bytes, public_key_pem: bytes) -> bool:
    """Whether `signature` is the key's over `metadata`."""
    key = serialization.load_pem_public_key(public_key_pem)
    if not isinstance(key, Ed25519PublicKey):
        return False
    try:
        key.verify(signature, metadata)
        return True
    except InvalidSignature:
        return False
