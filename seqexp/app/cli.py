"""What every entry point shares: user mistakes end as one line and a non-zero exit, not a traceback."""

import contextlib
import functools
import logging
import os
import sys
import traceback
from collections.abc import Callable, Iterator
from typing import Any, NoReturn, TypeVar

from hydra.core.hydra_config import HydraConfig
from hydra.errors import CompactHydraException
from hydra.types import RunMode

from seqexp.errors import ConfigError, RunFailed, RunInterrupted, user_error

log = logging.getLogger(__name__)

T = TypeVar("T")

USER_ERROR_EXIT = 2


def print_user_error(error: BaseException) -> None:
    """The one way a user mistake reaches the console: ``error: <message>`` on one line of stderr."""
    print(f"error: {error}", file=sys.stderr, flush=True)


def exit_with_user_error(error: BaseException) -> NoReturn:
    print_user_error(error)
    sys.exit(USER_ERROR_EXIT)


def in_multirun() -> bool:
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def report_user_errors(task: Callable[..., T]) -> Callable[..., T]:
    """Wrap a Hydra task so that a ConfigError (also one wrapped by Hydra's instantiate) prints
    ``error: <message>`` and exits with status 2, and a RunFailed prints it and exits with status 1.

    In a multirun the error is logged and re-raised instead, so Hydra marks that job failed and the
    sweep goes on; :func:`run_app` prints the one ``error:`` line when the sweep ends.
    """

    @functools.wraps(task)
    def wrapped(*args: Any, **kwargs: Any) -> T:
        try:
            return task(*args, **kwargs)
        except RunFailed as failure:
            if in_multirun():
                raise
            print_user_error(failure)
            sys.exit(1)
        except Exception as error:
            mistake = user_error(error)
            if mistake is None:
                raise
            if in_multirun():
                log.error("error: %s", mistake)
                raise mistake from None
            exit_with_user_error(mistake)

    return wrapped


def _hydra_mistake(error: BaseException) -> ConfigError | None:
    """A failure Hydra reports itself that is the user's to fix, as a ConfigError; else None.

    Hydra's composition errors (a mistyped key or option) are several lines; they become one. An OSError
    raised outside seqexp's code is Hydra failing to create the run folder (hydra.run.dir=/dev/null/x).
    """
    if isinstance(error, CompactHydraException):
        message = str(error).split("Config search path:")[0]  # the search path is Hydra's business
        return ConfigError(" ".join(line.strip() for line in message.splitlines() if line.strip()))
    if isinstance(error, OSError):
        frames = traceback.extract_tb(error.__traceback__)
        if not any("/seqexp/" in f.filename and f.filename != __file__ for f in frames):
            return ConfigError(
                f"cannot create the run folder ({error}): choose a hydra.run.dir (or hydra.sweep.dir) "
                "that can be created"
            )
    return None


def run_app(main: Callable[[], Any]) -> None:
    """Run a ``@hydra.main`` entry point so that what Hydra would report with its own multi-line block
    (a run folder it cannot create, a ConfigError that failed a multirun's job, a composition error)
    also ends as one ``error:`` line and exit status 2."""
    # With this set Hydra raises instead of printing its report; genuine bugs keep their traceback.
    os.environ["HYDRA_FULL_ERROR"] = "1"
    from seqexp.app import sweep_signals

    try:
        main()
    except RunInterrupted as interrupted:  # a job of a sweep that a signal stopped; the others are recorded
        sweep_signals.exit_stopped(interrupted.signum)
    except Exception as error:
        mistake = user_error(error) or _hydra_mistake(error)
        if mistake is None:
            raise
        exit_with_user_error(mistake)
    if (signum := sweep_signals.stopped_by()) is not None:  # the signal came as the last job ended
        sweep_signals.exit_stopped(signum)


@contextlib.contextmanager
def quiet_broken_pipe() -> Iterator[None]:
    """End quietly when the reader of stdout goes away (``report.py DIR | head``), as Unix tools do.

    The exit status is 141, a shell's status for a process ended by SIGPIPE; stdout is pointed at
    /dev/null so that Python's own flush at exit does not fail a second time.
    """
    try:
        yield
        sys.stdout.flush()  # here, not at exit, where a closed pipe would print "Exception ignored"
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(141)
