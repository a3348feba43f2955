"""Real processes of the project's scripts, without paying their imports every time.

A test that runs ``scripts/train.py`` needs a real process when only a process shows the thing under test:
an exit status, a signal, stdout and stderr as a user sees them. Most of such a process's life on the
2-core machine is importing torch, Lightning and Hydra (3-5 s). So one *zygote* process per test session
imports them once and forks a child for each run: the child is a real process with its own pid, exit
status, working folder, environment, standard streams and session, and it runs the script from its
first line as ``python scripts/<name>.py`` would (``__name__ == "__main__"``, ``sys.argv``, ``sys.path[0]``).
What a fork cannot give it, the imports' reading of the environment (``OMP_NUM_THREADS``), is the same
for every run here (tests.helpers.script_env); a run whose environment changes that goes cold.

Nothing here is used by seqexp itself: the scripts stay plain scripts. The zygote runs
``python -m tests.warm_start SOCKET`` and serves one request per connection over a Unix socket: the
request and the child's three standard streams (passed as file descriptors), then the child's pid back,
then its wait status when it ends.
"""

import contextlib
import io
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.helpers import REPO, script_env

# What the scripts import before their first line of work; the zygote has them loaded before it forks.
PRELOADED = (
    "torch",
    "pytorch_lightning",
    "hydra",
    "hydra.utils",
    "matplotlib.pyplot",
    "tensorboard.backend.event_processing.event_accumulator",
    "torch.utils.tensorboard",
    "seqexp.tasks.train",
    "seqexp.tasks.sample",
    "seqexp.tasks.evaluate",
    "seqexp.module",
    "seqexp.app.resume",
    "seqexp.callbacks.stop_on_signal",
    "seqexp.report.write",
)
# Read by native libraries when they load, so a run whose value differs must start cold.
READ_AT_IMPORT = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MALLOC_ARENA_MAX",
    "LD_PRELOAD",
)


# -- the zygote ---------------------------------------------------------------------------------------
def _serve(path: str) -> None:
    import importlib
    import logging

    # Lightning, imported into a process whose logging nobody has set up, installs a console handler of
    # its own and stops propagating. The scripts import it after Hydra has set up logging, so its lines
    # reach Hydra's handlers (stdout and train.log): a stand-in root handler keeps that so here.
    stand_in = logging.NullHandler()
    logging.getLogger().addHandler(stand_in)
    for name in PRELOADED:
        importlib.import_module(name)
    logging.getLogger().removeHandler(stand_in)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(64)
    waker_read, waker_write = os.pipe()
    os.set_blocking(waker_write, False)
    signal.set_wakeup_fd(waker_write)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    children: dict[int, socket.socket] = {}
    print("ready", flush=True)
    while True:
        readable, _, _ = select.select([listener, waker_read], [], [])
        if waker_read in readable:
            os.read(waker_read, 4096)
            _report_ended(children)
        if listener in readable:
            connection, _ = listener.accept()
            message, fds, _, _ = socket.recv_fds(connection, 1 << 20, 3)
            pid = os.fork()
            if pid == 0:  # the child: it never returns into this loop
                listener.close()
                os.close(waker_read)
                os.close(waker_write)
                for other in children.values():
                    other.close()
                connection.close()
                _become(json.loads(message), fds)
            for fd in fds:
                os.close(fd)
            connection.sendall(json.dumps({"pid": pid}).encode() + b"\n")
            children[pid] = connection
            _report_ended(children)  # a child may have ended before it was registered


def _report_ended(children: dict[int, socket.socket]) -> None:
    for pid in list(children):
        ended, status = os.waitpid(pid, os.WNOHANG)
        if ended:
            connection = children.pop(pid)
            with contextlib.suppress(OSError):
                connection.sendall(json.dumps({"status": status}).encode() + b"\n")
            connection.close()


def _become(request: dict, fds: list[int]) -> None:
    """Turn this fork into ``python SCRIPT ARGS...`` run in ``request["cwd"]`` with ``request["env"]``."""
    import runpy

    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    if request["new_session"]:
        os.setsid()
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    argv = request["argv"]
    # The zygote's streams were pipes to the test; the script's are the descriptors just installed.
    # (They live as long as the process, as the interpreter's own do.)
    sys.stdin = open(0, closefd=False)  # noqa: SIM115
    if os.environ.get("PYTHONUNBUFFERED"):
        sys.stdout = io.TextIOWrapper(open(1, "wb", buffering=0, closefd=False), write_through=True)  # noqa: SIM115
    else:
        sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", buffering=1, closefd=False, errors="backslashreplace")  # noqa: SIM115
    if argv[0] == "-c":  # python -c CODE ARGS: sys.argv[0] is "-c" and the path starts with the folder
        sys.argv, sys.path[0] = ["-c", *argv[2:]], ""
        exec(compile(argv[1], "<string>", "exec"), {"__name__": "__main__", "__builtins__": __builtins__})
    else:
        sys.argv, sys.path[0] = list(argv), str(Path(argv[0]).resolve().parent)
        runpy.run_path(argv[0], run_name="__main__")
    sys.exit(0)


# -- the client ---------------------------------------------------------------------------------------
class _Zygote:
    """The session's zygote, started on first use (one per pytest-xdist worker)."""

    def __init__(self) -> None:
        self.path: str | None = None
        self.process: subprocess.Popen | None = None

    def socket_path(self) -> str:
        if self.process is None or self.process.poll() is not None:
            self.path = os.path.join(tempfile.mkdtemp(prefix="seqexp-zygote-"), "socket")
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tests.warm_start", self.path],
                cwd=REPO,
                env=script_env(),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                text=True,
            )
            assert self.process.stdout is not None
            assert self.process.stdout.readline().strip() == "ready", "the zygote did not start"
        assert self.path is not None
        return self.path

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        if self.path is not None:
            shutil.rmtree(Path(self.path).parent, ignore_errors=True)


ZYGOTE = _Zygote()


class WarmProcess:
    """The part of ``subprocess.Popen`` the tests use, for a child of the zygote."""

    def __init__(self, connection: socket.socket, stdout: io.TextIOWrapper | None) -> None:
        self._connection = connection
        self._received = b""
        self.stdout = stdout  # the read end, where the caller asked for stdout=subprocess.PIPE
        self.pid: int = self._message(timeout=None)["pid"]
        self.returncode: int | None = None

    def _message(self, timeout: float | None) -> dict | None:
        """The zygote's next line for this child, or None if none came within ``timeout`` seconds. Read
        unbuffered: a buffer could hold the exit status while select() says there is nothing to read."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while b"\n" not in self._received:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not select.select([self._connection], [], [], left)[0]:
                return None
            chunk = self._connection.recv(4096)
            if not chunk:  # the zygote died: its children went with it or were orphaned
                return {"status": signal.SIGKILL}
            self._received += chunk
        line, self._received = self._received.split(b"\n", 1)
        return json.loads(line)

    def poll(self) -> int | None:
        return self._wait(timeout=0)

    def wait(self, timeout: float | None = None) -> int:
        code = self._wait(timeout)
        if code is None:
            raise subprocess.TimeoutExpired(str(self.pid), timeout or 0)
        return code

    def _wait(self, timeout: float | None) -> int | None:
        if self.returncode is None and (message := self._message(timeout)) is not None:
            self.returncode = os.waitstatus_to_exitcode(message["status"])
            self._connection.close()
        return self.returncode

    def send_signal(self, signum: int) -> None:
        if self.returncode is None:
            os.kill(self.pid, signum)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


def goes_cold(env: dict[str, str]) -> bool:
    """Whether ``env`` changes what the zygote's imports read, so the run needs a fresh interpreter."""
    zygote_env = script_env()
    return any(env.get(name) != zygote_env.get(name) for name in READ_AT_IMPORT)


def popen(
    argv: list,
    *,
    cwd: Path | str,
    env: dict[str, str] | None = None,
    stdout: object = None,
    stderr: object = None,
    start_new_session: bool = False,
) -> "WarmProcess | subprocess.Popen":
    """Start ``python *argv`` (a script path or ``-c CODE``, then arguments) as ``subprocess.Popen``
    would, as a fork of the zygote. Standard input is /dev/null. ``stdout``: an open file,
    ``subprocess.PIPE`` (text, read from ``.stdout``) or None (/dev/null); ``stderr``: an open file,
    ``subprocess.STDOUT`` or None (/dev/null)."""
    env = script_env() if env is None else env
    if goes_cold(env) or os.environ.get("SEQEXP_TESTS_COLD"):
        return subprocess.Popen(
            [sys.executable, *map(str, argv)], cwd=cwd, env=env, stdin=subprocess.DEVNULL,
            stdout=stdout if stdout is not None else subprocess.DEVNULL,
            stderr=stderr if stderr is not None else subprocess.DEVNULL,
            start_new_session=start_new_session, text=True,
        )  # fmt: skip
    with contextlib.ExitStack() as stack:
        devnull = stack.enter_context(open(os.devnull, "r+"))
        pipe_reader = None
        if stdout == subprocess.PIPE:
            read_fd, write_fd = os.pipe()
            pipe_reader = open(read_fd)  # noqa: SIM115 - the caller reads it while the child runs
            out_fd = stack.enter_context(open(write_fd, "w")).fileno()
        else:
            out_fd = (stdout or devnull).fileno()  # type: ignore[attr-defined]
        err_fd = out_fd if stderr == subprocess.STDOUT else (stderr or devnull).fileno()  # type: ignore[attr-defined]
        connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        connection.connect(ZYGOTE.socket_path())
        request = {
            "argv": [str(a) for a in argv],
            "cwd": str(cwd),
            "env": env,
            "new_session": start_new_session,
        }
        socket.send_fds(connection, [json.dumps(request).encode()], [devnull.fileno(), out_fd, err_fd])
        return WarmProcess(connection, pipe_reader)


def run(
    argv: list, *, cwd: Path | str, env: dict[str, str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess:
    """``subprocess.run([python, *argv], capture_output=True, text=True)`` through the zygote."""
    (result,) = run_together([argv], cwd=cwd, env=env, timeout=timeout)
    return result


def run_together(
    argvs: list[list], *, cwd: Path | str, env: dict[str, str] | None = None, timeout: float = 600
) -> list[subprocess.CompletedProcess]:
    """Several scripts started at once (a race between them is what the caller tests), each run as
    :func:`run` runs one; their results in the same order."""
    with contextlib.ExitStack() as stack:
        started = []
        for argv in argvs:
            out = stack.enter_context(tempfile.TemporaryFile("w+"))
            err = stack.enter_context(tempfile.TemporaryFile("w+"))
            started.append((argv, popen(argv, cwd=cwd, env=env, stdout=out, stderr=err), out, err))
        deadline = time.monotonic() + timeout
        results = []
        for argv, process, out, err in started:
            try:
                code = process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                for _, other, _, _ in started:
                    other.kill()
                raise
            out.seek(0)
            err.seek(0)
            results.append(subprocess.CompletedProcess([sys.executable, *argv], code, out.read(), err.read()))
        return results


if __name__ == "__main__":
    _serve(sys.argv[1])
