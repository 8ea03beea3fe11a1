"""The wallet key for on-chain transactions: eth-account signing behind an object that never shows
the key (its repr is the address; errors never echo the key). eth-account is imported lazily."""

from __future__ import annotations

from typing import Any


class KeySigner:
    """Signs EIP-1559 transactions, raw 32-byte digests and EIP-191 messages for one key."""

    __slots__ = ("_acct", "address")

    def __init__(self, private_key: str) -> None:
        from eth_account import Account

        try:
            self._acct = Account.from_key(private_key)
        except Exception:  # noqa: BLE001 - the library's message may echo the key: never pass it on
            raise ValueError("private key: not a valid secp256k1 private key (64 hex digits)") from None
        self.address: str = str(self._acct.address)

    def __repr__(self) -> str:
        return f"KeySigner({self.address})"

    __str__ = __repr__

    def sign_transaction(self, tx: dict[str, Any]) -> tuple[bytes, str]:
        """(raw signed transaction, its hash 0x…)."""
        s = self._acct.sign_transaction(tx)
        return bytes(s.raw_transaction), "0x" + bytes(s.hash).hex()

    def sign_digest(self, digest: bytes) -> bytes:
        """65-byte r|s|v (v 27/28) signature of a 32-byte digest, no prefix (EIP-712 digests)."""
        from eth_account import Account

        if len(digest) != 32:
            raise ValueError("a digest is 32 bytes")
        s = Account._sign_hash(digest, self._acct.key)  # noqa: SLF001 - eth-account's raw-hash signer
        return bytes(s.signature)

    def sign_eip191(self, message: bytes) -> bytes:
        """65-byte signature of ``"\\x19Ethereum Signed Message:\\n" + len + message`` (eth_sign)."""
        from eth_account.messages import encode_defunct

        return bytes(self._acct.sign_message(encode_defunct(primitive=message)).signature)


def recover_digest(digest: bytes, signature: bytes) -> str | None:
    """The address that signed a 32-byte digest (65-byte r|s|v, v 0/1/27/28), or None."""
    from eth_account import Account

    if len(signature) != 65 or len(digest) != 32:
        return None
    v = signature[64]
    if v in (0, 1):
        signature = signature[:64] + bytes([v + 27])
    try:
        return str(Account._recover_hash(digest, signature=signature))  # noqa: SLF001
    except Exception:  # noqa: BLE001 - any malformed signature is simply invalid
        return None


def eip191_digest(message: bytes) -> bytes:
    from eth_utils import keccak

    return bytes(keccak(b"\x19Ethereum Signed Message:\n" + str(len(message)).encode() + message))
