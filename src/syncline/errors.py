"""The one exception tree of syncline.

Every failure a user can meet is one of these, so a caller can catch exactly
the class of problem it knows how to handle::

    SynclineError
    ├── ConfigError                 bad YAML, unknown key, missing ${VAR}  → exit 2
    ├── SourceError                 something went wrong talking to the API
    │   ├── TransientError          worth retrying later (the run keeps its checkpoint)
    │   │   ├── RateLimited         429, or 403 with Retry-After
    │   │   ├── ServerError         5xx
    │   │   └── NetworkError        connect/read timeout, reset, truncated body
    │   └── PermanentError          retrying cannot help
    │       ├── AuthError           401 / plain 403
    │       ├── ClientError         other 4xx
    │       ├── BadPayload          not JSON, missing records path, GraphQL errors
    │       ├── PaginationLoop      the server repeated a cursor/URL, or max_pages hit
    │       ├── UnsafeNextLink      a next link or redirect leaves the API's origin
    │       ├── CertificateError    the server's TLS certificate is not trusted
    │       └── SyncTokenExpired    the server no longer accepts our sync token (410)
    ├── QuotaExhausted              a call budget is spent until its reset (the job pauses)
    └── StoreError                  the local store refused a write
        ├── LeaseHeld               another process is syncing this (stream, partition)
        └── LeaseLost               our lease expired and someone else took over

Source errors carry a :class:`RequestSummary`: method, URL with secrets
redacted, status and a truncated body snippet. Never headers: that is where
tokens live.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "AuthError",
    "BadPayload",
    "CertificateError",
    "ClientError",
    "ConfigError",
    "LeaseHeld",
    "LeaseLost",
    "NetworkError",
    "PaginationLoop",
    "PermanentError",
    "QuotaExhausted",
    "RateLimited",
    "RequestSummary",
    "ServerError",
    "SourceError",
    "StoreError",
    "SyncTokenExpired",
    "SynclineError",
    "TransientError",
    "UnsafeNextLink",
]

SNIPPET_LIMIT = 300


@dataclass(frozen=True, slots=True)
class RequestSummary:
    """What a user needs to reproduce a failed request, with secrets already removed."""

    method: str
    url: str
    status: int | None = None
    body_snippet: str = ""

    def __str__(self) -> str:
        text = f"{self.method} {self.url}"
        if self.status is not None:
            text += f" → {self.status}"
        if self.body_snippet:
            text += f": {self.body_snippet}"
        return text


class SynclineError(Exception):
    """Base of every error syncline raises on purpose."""


class ConfigError(SynclineError):
    """The configuration cannot be used; the message names the file and key path."""

    def __init__(self, message: str, *, file: str | None = None, key: str | None = None) -> None:
        self.file = file
        self.key = key
        where = ": ".join(part for part in (file, key) if part)
        super().__init__(f"{where}: {message}" if where else message)


class SourceError(SynclineError):
    """A request to the API failed; says which stream, partition and request."""

    def __init__(
        self,
        message: str,
        *,
        stream: str | None = None,
        partition: str | None = None,
        request: RequestSummary | None = None,
    ) -> None:
        self.reason = message
        self.stream = stream
        self.partition = partition
        self.request = request
        super().__init__(message)

    def located(self, *, stream: str, partition: str) -> SourceError:
        """Attach the job's identity once it is known (the HTTP layer does not know it)."""
        self.stream = stream
        self.partition = partition
        return self

    def __str__(self) -> str:
        parts = []
        if self.stream:
            where = self.stream + (f" [{self.partition}]" if self.partition else "")
            parts.append(where)
        parts.append(self.reason)
        if self.request is not None:
            parts.append(f"({self.request})")
        return ": ".join(parts[:2]) + (f" {parts[2]}" if len(parts) > 2 else "")


class TransientError(SourceError):
    """Worth retrying: the checkpoint stays where it is and a later attempt may succeed."""


class RateLimited(TransientError):
    """The server asked us to slow down; ``retry_after`` is its wait in seconds, if given."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: object) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.retry_after = retry_after


class ServerError(TransientError):
    """The server failed (5xx)."""


class NetworkError(TransientError):
    """No complete answer arrived: timeout, reset, truncated body.

    ``sent``: the request may have reached the server (a read timeout, a reset
    mid-answer), as opposed to a connection never made. Only a write cares:
    one that may have been applied is verified before it is sent again.
    """

    def __init__(self, message: str, *, sent: bool = True, **kwargs: object) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.sent = sent


class PermanentError(SourceError):
    """Retrying the same request cannot succeed."""


class AuthError(PermanentError):
    """The credentials were refused."""


class ClientError(PermanentError):
    """The server rejected the request itself (a 4xx other than auth and rate limits).

    ``answer`` keeps the error body (never shown: it may echo what we sent) so a
    stream can recognise an API's own error codes, such as "sync token expired".
    """

    def __init__(self, message: str, *, answer: bytes = b"", **kwargs: object) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.answer = answer


class BadPayload(PermanentError):
    """The answer is not what the stream's configuration expects.

    ``retryable`` marks bodies that did not decode at all (an HTML error page
    served with 200, JSON cut short): worth one more try, not more.
    """

    def __init__(self, message: str, *, retryable: bool = False, **kwargs: object) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.retryable = retryable


class PaginationLoop(PermanentError):
    """The server sent us back somewhere we have already been in this pass."""


class UnsafeNextLink(PermanentError):
    """A next link points outside the API's origin; following it could leak credentials."""


class CertificateError(PermanentError):
    """TLS verification failed: retrying cannot help, trusting the right CA can."""


class SyncTokenExpired(PermanentError):
    """The server rejected our stored sync token; only a full resync can recover."""


class QuotaExhausted(SynclineError):
    """A call budget of ``scope`` is spent until ``resume_at`` (epoch seconds; ``None``:
    the cap was this run's own, and the next run may continue at once).

    Not a failure: the job pauses with its checkpoint and continues after the reset.
    """

    def __init__(self, message: str, *, scope: str, resume_at: float | None) -> None:
        super().__init__(message)
        self.scope = scope
        self.resume_at = resume_at


class StoreError(SynclineError):
    """The local store refused a write; the transaction was rolled back."""


class LeaseHeld(StoreError):
    """Another process holds the lease on this (stream, partition) and it has not expired."""

    def __init__(self, message: str, *, holder: str, expires_at: float) -> None:
        super().__init__(message)
        self.holder = holder
        self.expires_at = expires_at


class LeaseLost(StoreError):
    """Our lease was taken over (we stalled past its expiry); the commit was refused."""
