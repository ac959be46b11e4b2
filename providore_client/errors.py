"""The failures the client reports: each one line, never a traceback."""

from __future__ import annotations


class ProvidoreError(Exception):
    """A failure told to the user as one line, with exit status 1."""


class SettingsError(ProvidoreError):
    """A missing or invalid setting."""


class ConnectionFailed(ProvidoreError):  # noqa: N818
    """The server could not be reached, or the connection broke."""


class ServerError(ProvidoreError):
    """The server answered with an unexpected status."""

    def __init__(self, status: int, message: str) -> None:
        """Keep the HTTP status beside the message."""
        super().__init__(message)
        self.status = status


class RangeNotSatisfiable(ServerError):  # noqa: N818
    """The server cannot serve the requested range (416): the partial file is stale."""


class ResponseRejected(ProvidoreError):  # noqa: N818
    """An answer that fails verification: signature, validity window, digest or form."""
