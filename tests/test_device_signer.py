"""The tests' own device signer reproduces the protocol's test vectors too."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from .device import response_is_signed, signed_headers
from .vectors import REQUEST_VECTORS, RESPONSE_VECTORS


@pytest.mark.parametrize("vector", REQUEST_VECTORS, ids=lambda v: v["path"])
def test_request_vectors(vector: dict[str, Any]) -> None:
    created = datetime.fromisoformat(vector["created_at"])
    expiry = datetime.fromisoformat(vector["expiry"])
    headers = signed_headers(
        vector["method"],
        vector["path"],
        body=None if vector["body"] is None else vector["body"].encode(),
        key_id=vector["key_id"],
        secret=vector["secret_key"],
        firmware_version=vector["firmware_version"],
        created=created,
        lifetime=expiry - created,
    )
    assert headers["Created-At"] == vector["created_at"]
    assert headers["Expiry"] == vector["expiry"]
    assert headers["Authorization"] == (
        f'Hmac key-id="{vector["key_id"]}", signature="{vector["signature"]}"'
    )


@pytest.mark.parametrize("vector", RESPONSE_VECTORS, ids=lambda v: v["signature"])
def test_response_vectors(vector: dict[str, Any]) -> None:
    headers = {
        "created-at": vector["created_at"],
        "expiry": vector["expiry"],
        "signature": vector["signature"],
    }
    body = vector["body"].encode()
    assert response_is_signed(body, headers, vector["secret_key"])
    assert not response_is_signed(body + b" ", headers, vector["secret_key"])
