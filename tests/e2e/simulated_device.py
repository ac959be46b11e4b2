"""A device calling the Home Assistant under test, with the key from its provisioning bundle.

Requests are signed and answers checked with the independent signer in `tests/device.py`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
import hashlib
import hmac
from typing import Any

from ..device import response_is_signed, signed_headers
from .home_assistant import Response, request


@dataclass(frozen=True, slots=True)
class SimulatedDevice:
    """A flashed device: its key, the base URL of the device API, the firmware it runs."""

    key_id: str
    secret_key: str
    base_url: str
    firmware_version: str = "1.0.0"

    @classmethod
    def flashed_with(cls, bundle: dict[str, Any]) -> SimulatedDevice:
        """Return the device flashed with a `providore.provisioning_bundle` answer."""
        return cls(bundle["key_id"], bundle["secret_key"], bundle["base_url"])

    def call(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        *,
        query: str = "",
        headers: dict[str, str] | None = None,
    ) -> Response:
        """Send a signed request to `path` (relative to the base URL; the query is not signed)."""
        signed = signed_headers(
            method,
            path,
            body=body,
            key_id=self.key_id,
            secret=self.secret_key,
            firmware_version=self.firmware_version,
        )
        return request(
            f"{self.base_url}{path}{query}",
            method=method,
            headers=signed | (headers or {}),
            body=body,
        )

    def answer_is_signed(self, answer: Response, body: bytes | None = None) -> bool:
        """Return whether an answer carries Home Assistant's signature over `body`.

        `body` defaults to the answer's own; a ranged answer is signed over the whole file.
        """
        headers = {name.lower(): value for name, value in answer.headers.items()}
        signed_body = answer.body if body is None else body
        return response_is_signed(signed_body, headers, self.secret_key)

    def firmware_location(self) -> str:
        """Ask `GET /firmware/check` where the new firmware is; return the path and query."""
        answer = self.call("GET", "/firmware/check")
        assert answer.status == 302, (answer.status, answer.body)
        location = answer.headers["Location"]
        assert location.startswith(f"{self.base_url}/firmware?"), location
        return location.removeprefix(self.base_url)

    def download_range(self, location: str, start: int, end: int | None) -> Response:
        """Download bytes `start` to `end` (inclusive; None: to the end) of the firmware."""
        path, _, query = location.partition("?")
        last = "" if end is None else str(end)
        answer = self.call(
            "GET", path, query=f"?{query}", headers={"Range": f"bytes={start}-{last}"}
        )
        assert answer.status == 206, (answer.status, answer.body[:200])
        return answer

    def verify_firmware(self, answer: Response, image: bytes) -> None:
        """Check a downloaded image like a device does before flashing it.

        The signature covers the whole file, and X-Firmware-SHA256 is its digest.
        """
        sha256 = hashlib.sha256(image).hexdigest()
        assert hmac.compare_digest(answer.headers["X-Firmware-SHA256"], sha256)
        assert self.answer_is_signed(answer, image), "the firmware's signature is wrong"

    def rebooted_into(self, firmware_version: str) -> SimulatedDevice:
        """Return the device running another firmware version."""
        return replace(self, firmware_version=firmware_version)
