"""User-facing errors: one line that names the bad value and what would be valid."""

from __future__ import annotations

import contextlib
import sys
from typing import Iterator


class ConfigError(ValueError):
    """Bad input from a config, the command line or a file path; printed as one line."""


class CheckpointError(ConfigError):
    """A checkpoint that is missing, unreadable, or does not fit the task it is used for."""


@contextlib.contextmanager
def one_line_errors() -> Iterator[None]:
    """Turn ConfigError into ``error: <message>`` on stderr and exit status 2."""
    try:
        yield
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
