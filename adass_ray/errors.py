"""User-facing errors.

Every error a user can cause by bad input is an :class:`AdassError` whose message is one line
that says what is wrong and what to do. The CLI prints it without a traceback and exits non-zero;
``assert`` is kept for internal invariants only.
"""

from __future__ import annotations


class AdassError(Exception):
    """A problem with the user's input, configuration or environment (one actionable line)."""

    exit_code: int = 2

    def __init__(self, message: str) -> None:
        # Keep messages to one line: they are printed as-is on stderr.
        super().__init__(" ".join(str(message).split()))


class DataError(AdassError):
    """Raw data or a prepared dataset that cannot be used as given."""


class ConfigError(AdassError):
    """A configuration value, override or schema that is invalid."""


class FetchError(AdassError):
    """A built-in dataset that could not be fetched or verified."""


class NonFiniteLossError(AdassError):
    """Training produced a NaN or infinite loss; the run stops there (retrying repeats it)."""


class WorkerFailure(AdassError):
    """A training worker died or raised something that is not one of our errors.

    Not the user's input, so exit code 1; the message names the worker and the root cause.
    """

    exit_code = 1
