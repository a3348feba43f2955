"""The one exception type for user mistakes, and how to find, judge and describe one; the exceptions
that end a run stopped by a signal (or a sweep's job it stopped before the job began), and one ended by
a fault outside its code (a lost DDP rank). None ends in a traceback.

Anything raised as ``ConfigError`` is the user's to fix (a bad value, a missing file); the entry points
print its message as one line and exit non-zero instead of showing a traceback.
"""

import signal
from collections.abc import Callable, Iterable
from typing import Any

# What stops a run (or a sweep) cleanly: the run validates, saves and records ``interrupted``.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1, signal.SIGUSR2)


class ConfigError(ValueError):
    """A user-facing mistake: the message names the bad value and what would be valid."""


class RunInterrupted(Exception):
    """A signal stopped the run; its status says so and the process exits ``128 + signal``, with no
    traceback (the state saved at the stop, or the last checkpoint before it, continues the run)."""

    def __init__(self, signum: int, note: str | None = None) -> None:
        super().__init__(signum, note)  # all the arguments, so that it pickles (from joblib workers)
        self.signum = signum
        self.note = note  # what else the run's status should say

    def __str__(self) -> str:
        return f"interrupted by signal {self.signum}"


class RunFailed(Exception):
    """A fault outside the run's own code ended it (a DDP rank died): the run records ``failed`` and
    the process exits 1 with the message as one ``error:`` line, without a traceback."""


class JobNotStarted(RunInterrupted):
    """A job of a sweep that a signal stopped before the job began: it records ``not started``."""

    def __str__(self) -> str:
        return f"not started: its sweep was stopped by signal {self.signum}"


def is_int(value: Any) -> bool:
    """An integer, and not a bool (which Python counts as one)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def require(key: str, value: Any, ok: Callable[[Any], bool], allowed: str) -> None:
    """ConfigError ``key=value is invalid: it must be <allowed>`` unless ``ok(value)``."""
    if not ok(value):
        raise ConfigError(f"{key}={value!r} is invalid: it must be {allowed}")


def one_of(key: str, value: Any, choices: Iterable[str]) -> None:
    choices = tuple(choices)
    if value not in choices:
        raise ConfigError(f"{key}={value!r} is invalid: it must be one of {', '.join(choices)}")


def user_error(error: BaseException) -> ConfigError | None:
    """The ConfigError behind ``error``, if any: libraries such as Hydra's ``instantiate`` wrap the
    exceptions of the constructors they call."""
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, ConfigError):
            return cause
        cause = cause.__cause__
    return None


def first_line(error: BaseException) -> str:
    """``Type: first line of the message`` (or just the type): an error described in one line."""
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__


def root_cause(error: BaseException) -> BaseException:
    """The innermost exception that ``error`` wraps (Hydra's instantiate wraps the constructor's error)."""
    while error.__cause__ is not None:
        error = error.__cause__
    return error
