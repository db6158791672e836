"""Logging for the command line: one line per message on stderr, secrets masked twice.

Every message syncline logs is already built from redacted values; the filter
installed here masks the config's known secrets once more at the handler, so a
future log call that forgets cannot leak a token at any level.
"""

from __future__ import annotations

import logging
import sys

from syncline.config import Config
from syncline.http import secrets_of
from syncline.redact import Redactor

__all__ = ["configure_logging", "install_redaction"]

LOGGER = "syncline"


class _RedactingFilter(logging.Filter):
    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = self.redactor.text(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


class _StderrHandler(logging.Handler):
    """Writes to whatever ``sys.stderr`` is now (test runners swap it per invocation)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
        except Exception:  # logging must never break the sync
            self.handleError(record)


def configure_logging(level: str) -> None:
    """Send syncline's log to stderr at ``level`` (idempotent: one handler)."""
    logger = logging.getLogger(LOGGER)
    logger.setLevel(level.upper())
    if not any(isinstance(h, _StderrHandler) for h in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
        logger.addHandler(handler)


def install_redaction(config: Config) -> Redactor:
    """Mask every credential of ``config`` in whatever reaches the syncline log handlers."""
    redactor = Redactor(s for source in config.sources.values() for s in secrets_of(source))
    for handler in logging.getLogger(LOGGER).handlers:
        for old in [f for f in handler.filters if isinstance(f, _RedactingFilter)]:
            handler.removeFilter(old)
        handler.addFilter(_RedactingFilter(redactor))
    return redactor
