"""The one exception type for user mistakes, and how to find and describe one.

Anything raised as ``ConfigError`` is the user's to fix (a bad value, a missing file); the entry points
print its message as one line and exit non-zero instead of showing a traceback.
"""


class ConfigError(ValueError):
    """A user-facing mistake: the message names the bad value and what would be valid."""


def user_error(error: BaseException) -> ConfigError | None:
    """The ConfigError behind ``error``, if any: libraries such as Hydra's ``instantiate`` wrap the
    exceptions of the constructors they call."""
    while error is not None:
        if isinstance(error, ConfigError):
            return error
        error = error.__cause__
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
