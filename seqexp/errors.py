"""The one exception type for user mistakes.

Anything raised as ``ConfigError`` is the user's to fix (a bad value, a missing file); the entry points
print its message as one line and exit non-zero instead of showing a traceback.
"""


class ConfigError(ValueError):
    """A user-facing mistake: the message names the bad value and what would be valid."""
