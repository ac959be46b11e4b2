"""HTTP/1.1 exchanges with exactly the bytes given, as a hostile device could send them.

A client library normalises paths, refuses bytes outside ASCII in headers and never
repeats a header by accident; the tests that play an attacker need all of that.
Each exchange uses its own connection (`Connection: close`) and reads to its end.
"""

from __future__ import annotations

import asyncio
from contextlib import suppress
from dataclasses import dataclass, field

EXCHANGE_TIMEOUT = 30.0


@dataclass(frozen=True, slots=True)
class RawRequest:
    """One request, byte for byte: headers in order (repeats allowed) and the body."""

    method: bytes
    target: bytes
    headers: tuple[tuple[bytes, bytes], ...]
    body: bytes = b""
    # Send the body with chunked transfer coding instead of a Content-Length.
    chunked: bool = False

    def header_values(self, name: bytes) -> list[bytes]:
        """Return every value sent under `name` (any letter case), as HTTP reads them."""
        wanted = name.lower()
        return [
            value.strip(b" \t")
            for sent, value in self.headers
            if sent.strip(b" \t").lower() == wanted
        ]

    def encode(self, host: bytes) -> bytes:
        """Return the request's bytes on the wire."""
        lines = [self.method + b" " + self.target + b" HTTP/1.1", b"Host: " + host]
        lines += [name + b": " + value for name, value in self.headers]
        lines.append(b"Connection: close")
        if self.chunked:
            lines.append(b"Transfer-Encoding: chunked")
            payload = b"".join(
                b"%x\r\n%s\r\n" % (len(piece), piece)
                for piece in (self.body[:7], self.body[7:])
                if piece
            )
            payload += b"0\r\n\r\n"
        else:
            if self.body or self.method in (b"POST", b"PUT"):
                lines.append(b"Content-Length: %d" % len(self.body))
            payload = self.body
        return b"\r\n".join(lines) + b"\r\n\r\n" + payload


@dataclass(frozen=True, slots=True)
class RawAnswer:
    """An answer: status, headers (lower-case names) and the body as sent."""

    status: int
    headers: dict[str, list[str]] = field(default_factory=dict)
    body: bytes = b""

    def header(self, name: str) -> str | None:
        """Return the first value of a header, if it was sent."""
        values = self.headers.get(name.lower())
        return values[0] if values else None

    def first_headers(self) -> dict[str, str]:
        """Return each header's first value, by lower-case name."""
        return {name: values[0] for name, values in self.headers.items()}


async def exchange(host: str, port: int, request: RawRequest) -> RawAnswer:
    """Send the request on a new connection and read the whole answer.

    A server may answer and close before it has read the whole body (a request line
    it refuses): the answer is read all the same, and the reset that follows ignored.
    """
    reader, writer = await asyncio.open_connection(host, port)
    data = bytearray()
    try:
        writer.write(request.encode(f"{host}:{port}".encode()))
        with suppress(ConnectionError):
            await writer.drain()
        async with asyncio.timeout(EXCHANGE_TIMEOUT):
            with suppress(ConnectionResetError):
                while chunk := await reader.read(65536):
                    data += chunk
    finally:
        writer.close()
        with suppress(ConnectionError):
            await writer.wait_closed()
    return parse_answer(bytes(data))


def parse_answer(data: bytes) -> RawAnswer:
    """Read a complete HTTP/1.1 answer (the connection was closed after it).

    Interim answers (`100 Continue`) before it are skipped.
    """
    while data.startswith(b"HTTP/1.1 1"):
        data = data.partition(b"\r\n\r\n")[2]
    head, separator, body = data.partition(b"\r\n\r\n")
    if not separator:
        raise ValueError(f"no complete answer: {data[:200]!r}")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers: dict[str, list[str]] = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers.setdefault(name.strip().lower(), []).append(value.strip())
    if "chunked" in ",".join(headers.get("transfer-encoding", [])).lower():
        body = _dechunk(body)
    return RawAnswer(int(status_line.split()[1]), headers, body)


def _dechunk(data: bytes) -> bytes:
    body = bytearray()
    while True:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            return bytes(body)
        body += data[:size]
        data = data[size + 2 :]
