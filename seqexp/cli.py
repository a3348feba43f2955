"""What every entry point shares: user mistakes end as one line and a non-zero exit, not a traceback."""

import functools
import sys
from collections.abc import Callable
from typing import Any, TypeVar

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode

from seqexp.errors import user_error

T = TypeVar("T")

USER_ERROR_EXIT = 2


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
            print(f"error: {mistake}", file=sys.stderr, flush=True)
            if _in_multirun():
                raise mistake from None
            sys.exit(USER_ERROR_EXIT)

    return wrapped
