"""What every entry point shares: user mistakes end as one line and a non-zero exit, not a traceback."""

import functools
import sys
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode

from seqexp.errors import user_error

T = TypeVar("T")

USER_ERROR_EXIT = 2


def print_user_error(error: BaseException) -> None:
    """The one way a user mistake reaches the console: ``error: <message>`` on one line of stderr."""
    print(f"error: {error}", file=sys.stderr, flush=True)


def exit_with_user_error(error: BaseException) -> NoReturn:
    print_user_error(error)
    sys.exit(USER_ERROR_EXIT)


def _in_multirun() -> bool:
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def report_user_errors(task: Callable[..., T]) -> Callable[..., T]:
    """Wrap a Hydra task so that a ConfigError (also one wrapped by Hydra's instantiate) prints
    ``error: <message>`` and exits with status 2.

    In a multirun the error is re-raised instead, so Hydra marks that job failed and the sweep goes on.
    """

    @functools.wraps(task)
    def wrapped(*args: Any, **kwargs: Any) -> T:
        try:
            return task(*args, **kwargs)
        except Exception as error:
            mistake = user_error(error)
            if mistake is None:
                raise
            if _in_multirun():
                print_user_error(mistake)
                raise mistake from None
            exit_with_user_error(mistake)

    return wrapped
