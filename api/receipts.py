"""Payment receipts a recipient can check publicly without revealing anyone.

receipt key  = HMAC-SHA-256(pseudonym key, "jejak/receipt-key/v1")
receipt code = base32(HMAC-SHA-256(receipt key, order id))[:10]  (50 bits, upper case)

The code is printed on the recipient's payment slip (the inspector API issues
it). Knowing an order id alone reveals nothing: the public endpoint answers the
same 404 for a wrong code and an unknown order, and checks the code before it
ever touches the store, so ids cannot be probed by content or by timing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from jejak.store.vault import Tokenizer

RECEIPT_KEY_LABEL = b"jejak/receipt-key/v1"
CODE_LENGTH = 10
_ALPHABET = set("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")


def receipt_key(tokenizer: Tokenizer) -> bytes:
    """A key separate from the pseudonym key, derived from it under a label."""
    return tokenizer.derive(RECEIPT_KEY_LABEL)


class ReceiptCodes:
    def __init__(self, key: bytes) -> None:
        self._key = key

    def code(self, order_id: str) -> str:
        mac = hmac.new(self._key, order_id.encode("utf-8"), hashlib.sha256).digest()
        return base64.b32encode(mac).decode("ascii")[:CODE_LENGTH]

    @staticmethod
    def normalize(code: str) -> str:
        return "".join(ch for ch in code.upper() if ch not in " -")

    def check(self, order_id: str, code: str) -> bool:
        given = self.normalize(code)
        expected = self.code(order_id)
        ok = len(given) == CODE_LENGTH and set(given) <= _ALPHABET
        # compare regardless, in constant time
        return hmac.compare_digest(given.encode("ascii", "replace"), expected.encode("ascii")) and ok
