"""Ed25519 request signing for Polymarket US (the ``X-PM-*`` headers), and its verification.

Signing is the official SDK's own helper (``polymarket_us.auth.create_auth_headers``: the
message is ``timestamp_ms + METHOD + path``, the key a base64 Ed25519 seed, or a 64-byte
seed+public key of which the first 32 bytes are the seed). Verification (the local simulator)
and key generation use PyNaCl, which the SDK depends on. Secrets never leave this module in a
log line: :func:`describe_key` shows the key id only.
"""

from __future__ import annotations

import base64
import binascii
import time

ACCESS_KEY = "X-PM-Access-Key"
TIMESTAMP = "X-PM-Timestamp"
SIGNATURE = "X-PM-Signature"
#: the venue refuses a timestamp further than this from its clock (documented: 30 s)
MAX_SKEW_MS = 30_000


class AuthError(ValueError):
    """A key that cannot sign (not base64, wrong length)."""


def _seed(secret_key: str) -> bytes:
    try:
        raw = base64.b64decode(secret_key, validate=True)
    except (binascii.Error, ValueError):
        raise AuthError("secret key is not base64") from None
    if len(raw) == 64:
        raw = raw[:32]
    if len(raw) != 32:
        raise AuthError(f"secret key must be a 32-byte Ed25519 seed (or 64 bytes), got {len(raw)} bytes")
    return raw


def check_secret(secret_key: str) -> None:
    """Raise :class:`AuthError` if ``secret_key`` cannot sign (config validation)."""
    _seed(secret_key)


def sign_headers(key_id: str, secret_key: str, method: str, path: str, ts_ms: int | None = None) -> dict[str, str]:
    """The three auth headers for ``METHOD path`` (path without scheme, host or query)."""
    check_secret(secret_key)
    if ts_ms is None:
        from polymarket_us.auth import create_auth_headers  # the SDK's helper (live path only)

        return create_auth_headers(key_id, secret_key, method.upper(), path)
    from nacl.signing import SigningKey

    sig = SigningKey(_seed(secret_key)).sign(f"{ts_ms}{method.upper()}{path}".encode()).signature
    return {ACCESS_KEY: key_id, TIMESTAMP: str(ts_ms), SIGNATURE: base64.b64encode(sig).decode()}


def public_key(secret_key: str) -> str:
    """The base64 Ed25519 public key of a secret key (what the venue stores for a key id)."""
    from nacl.signing import SigningKey

    return base64.b64encode(bytes(SigningKey(_seed(secret_key)).verify_key)).decode()


def generate_key() -> tuple[str, str]:
    """A fresh (secret key, public key), both base64 (tests and the simulator's demo key)."""
    from nacl.signing import SigningKey

    sk = SigningKey.generate()
    return base64.b64encode(bytes(sk)).decode(), base64.b64encode(bytes(sk.verify_key)).decode()


def verify(public_key_b64: str, headers: dict[str, str], method: str, path: str,
           now_ms: int | None = None, max_skew_ms: int = MAX_SKEW_MS) -> str:  # fmt: skip
    """Check a request's signature: ``""`` if good, else the reason (for a 401 body)."""
    from nacl.exceptions import BadSignatureError
    from nacl.signing import VerifyKey

    ts = headers.get(TIMESTAMP, "")
    sig = headers.get(SIGNATURE, "")
    if not ts or not sig:
        return "missing X-PM-Timestamp or X-PM-Signature"
    if not ts.isdigit():
        return "X-PM-Timestamp is not milliseconds"
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    if abs(now_ms - int(ts)) > max_skew_ms:
        return "timestamp outside the allowed window"
    try:
        VerifyKey(base64.b64decode(public_key_b64)).verify(f"{ts}{method.upper()}{path}".encode(), base64.b64decode(sig))
    except (BadSignatureError, binascii.Error, ValueError):
        return "bad signature"
    return ""


def describe_key(key_id: str) -> str:
    """A key id for logs: its first 8 characters."""
    return (key_id[:8] + "...") if len(key_id) > 8 else key_id
