"""A device calling the Home Assistant under test, with the key from its provisioning bundle.

Requests are signed and answers checked with the independent signer in `tests/device.py`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..device import response_is_signed, signed_headers
from .home_assistant import Response, request


@dataclass(frozen=True, slots=True)
class SimulatedDevice:
    """A flashed device: its key and the base URL of the device API."""

    key_id: str
    secret_key: str
    base_url: str
    firmware_version: str = "1.0.0"

    @classmethod
    def flashed_with(cls, bundle: dict[str, Any]) -> SimulatedDevice:
        """Return the device flashed with a `providore.provisioning_bundle` answer."""
        return cls(bundle["key_id"], bundle["secret_key"], bundle["base_url"])

    def call(self, method: str, path: str, body: bytes | None = None) -> Response:
        """Send a signed request to `path` (relative to the base URL)."""
        headers = signed_headers(
            method,
            path,
            body=body,
            key_id=self.key_id,
            secret=self.secret_key,
            firmware_version=self.firmware_version,
        )
        return request(
            f"{self.base_url}{path}", method=method, headers=headers, body=body
        )

    def answer_is_signed(self, answer: Response) -> bool:
        """Return whether a 200 answer carries Home Assistant's signature over its body."""
        headers = {name.lower(): value for name, value in answer.headers.items()}
        return response_is_signed(answer.body, headers, self.secret_key)
