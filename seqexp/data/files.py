"""Files under the data folder: read text in chunks as a user would be told, write atomically, download
verified.

Every write goes to a temporary file beside the target and is moved into place with os.replace, so an
interrupted build or download never leaves a half file that a later run would take for a good one. The
temporary file's name carries its writer's host and process id: the next write of the same file removes
the temporaries of writers on this host that died (a SIGKILL leaves one behind) and no one else's.
"""

import contextlib
import errno
import fcntl
import hashlib
import http.client
import logging
import os
import socket
import tempfile
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from seqexp.errors import ConfigError

log = logging.getLogger(__name__)

DOWNLOAD_TIMEOUT_S = 30
CHUNK = 1 << 20


@contextlib.contextmanager
def one_at_a_time(folder: Path) -> Iterator[None]:
    """Hold a lock on ``folder`` while the block checks and builds a file there.

    The processes of a run on several nodes start together and share the data folder: each would build
    the same cache at once and rewrite it under the others (one then finds its source "changed while it
    was being prepared"). With the lock the first builds and the others find the file ready. A folder
    where no lock can be made (read-only, or a file system without locks) goes without. Folders made for
    the lock that the block left empty (it refused a bad file) are removed again."""
    made = [path for path in (*reversed(folder.parents), folder) if not path.exists()]
    with contextlib.ExitStack() as held:  # its callbacks run last first: the deepest folder goes first
        for path in made:
            held.callback(_remove_if_empty, path)
        with contextlib.suppress(OSError):
            folder.mkdir(parents=True, exist_ok=True)
            # The folder's own descriptor carries the lock: no lock file is left among the data.
            descriptor = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
            held.callback(os.close, descriptor)  # which releases the lock
            fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield


def _remove_if_empty(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not empty, or already gone
        folder.rmdir()


def existing_file(path: str | Path, key: str, expected: str) -> Path:
    """``path`` if it is a file, else ConfigError ``<key>='...' does not exist: give <expected>``."""
    file = Path(path).expanduser()
    if not file.is_file():
        what = "is a directory" if file.is_dir() else "does not exist"
        raise ConfigError(f"{key}={str(path)!r} {what}: give {expected}")
    return file


def text_chunks(path: Path, key: str = "data.path", chunk_bytes: int = CHUNK) -> Iterator[tuple[bytes, str]]:
    """The UTF-8 file ``path`` as ``(raw bytes, text)`` pieces of about ``chunk_bytes``, with "\\r\\n" read
    as "\\n"; the raw pieces, joined, are the file's bytes exactly (for hashing).

    A character or a "\\r\\n" cut by a chunk boundary is carried over to the next piece. A file that
    is not UTF-8 raises ConfigError naming ``key`` and the line and byte offset of the first bad byte.
    """
    carry, offset, line = b"", 0, 1  # undecoded bytes; the file offset and line number where they start
    with path.open("rb") as file:
        while True:
            raw = file.read(chunk_bytes)
            data = carry + raw
            if not data:
                return
            cut = complete_prefix(data) if raw else len(data)  # at the end of the file, decode it all
            piece, carry = data[:cut], data[cut:]
            try:
                text = piece.decode("utf-8")
            except UnicodeDecodeError as error:
                bad = error.start
                bad_line = line + piece.count(b"\n", 0, bad)
                raise ConfigError(
                    f"{key}={str(path)!r} is not UTF-8 text (byte 0x{piece[bad]:02x} on line {bad_line}, "
                    f"at byte offset {offset + bad}, is invalid): "
                    "convert it to UTF-8 first, e.g. with iconv"
                ) from None
            offset += cut
            line += piece.count(b"\n")
            yield raw, text.replace("\r\n", "\n")


def complete_prefix(data: bytes) -> int:
    """The length of ``data`` without a trailing character cut short or a trailing "\\r" (whose "\\n"
    may begin the next chunk)."""
    end = len(data)
    lead = end - 1  # back over up to three continuation bytes (10xxxxxx) to the last character's lead
    while lead > max(end - 4, 0) and 0x80 <= data[lead] < 0xC0:
        lead -= 1
    first = data[lead]
    length = 2 if 0xC0 <= first < 0xE0 else 3 if 0xE0 <= first < 0xF0 else 4 if 0xF0 <= first < 0xF8 else 1
    if end - lead < length:
        end = lead
    if end and data[end - 1] == 0x0D:
        end -= 1
    return end


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def mount_point(path: Path) -> Path:
    """The mount point of the file system that holds ``path``: the disk a message should name."""
    folder = path.resolve().parent
    while not os.path.ismount(folder):
        folder = folder.parent
    return folder


def process_alive(host: str, pid: int) -> bool:
    """False when ``pid`` is known to have ended: it ran on this host and no such process exists. A
    process on another host is assumed alive."""
    if host != socket.gethostname():
        return True
    try:
        os.kill(pid, 0)  # signal 0 only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True


def remove_stale_temporaries(path: Path) -> None:
    """Remove the temporary files of writes of ``path`` whose writer died on this host."""
    host = socket.gethostname()
    prefix = f".{path.name}.{host}."
    for temp in path.parent.glob(f".{path.name}.*.part"):
        pid = temp.name.removeprefix(prefix).split(".")[0] if temp.name.startswith(prefix) else ""
        if pid.isdigit() and not process_alive(host, int(pid)):
            temp.unlink(missing_ok=True)


# What the file system says when the user must make room or choose another folder.
NO_ROOM = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM)


def write_atomically(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """Call ``write`` on a temporary file beside ``path``, then move it into place; on any failure
    the temporary file is removed and ``path`` is left as it was. A full disk, a quota or a folder that
    cannot be written is a ConfigError of one line naming the file and its disk."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(path)
        prefix = f".{path.name}.{socket.gethostname()}.{os.getpid()}."
        fd, temp = tempfile.mkstemp(dir=path.parent, prefix=prefix, suffix=".part")
    except OSError as error:
        if error.errno in NO_ROOM:
            raise _no_room(path, error) from None
        raise
    try:
        os.chmod(temp, 0o644)  # mkstemp makes files private; a cache is as readable as any other file
        with os.fdopen(fd, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, path)
    except BaseException as error:
        Path(temp).unlink(missing_ok=True)
        if isinstance(error, OSError) and error.errno in NO_ROOM:
            raise _no_room(path, error) from None
        raise


def _no_room(path: Path, error: OSError) -> ConfigError:
    return ConfigError(
        f"cannot write {path} on {mount_point(path)}: {error.strerror}: free some space there, or choose "
        "a folder that can be written"
    )


def download_verified(url: str, sha256: str, path: Path, local_copy_hint: str) -> None:
    """Download ``url`` to ``path`` if its sha256 is ``sha256``; otherwise ConfigError and nothing kept.

    ``local_copy_hint`` tells the user how to pass a copy they already have (for machines offline).
    """
    log.info("downloading %s to %s", url, path)
    digest = hashlib.sha256()

    def fetch(file: BinaryIO) -> None:
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response:
            while chunk := response.read(CHUNK):
                digest.update(chunk)
                file.write(chunk)
        if digest.hexdigest() != sha256:
            raise ConfigError(
                f"the file downloaded from data.url={url!r} has sha256 {digest.hexdigest()}, expected "
                f"{sha256}; nothing was kept: check data.url and data.sha256"
            )

    try:
        write_atomically(path, fetch)
    except ConfigError:
        raise
    except (OSError, ValueError, http.client.HTTPException) as error:  # URLError is an OSError
        reason = getattr(error, "reason", None) or error
        raise ConfigError(
            f"cannot download data.url={url!r} ({reason}); without network, {local_copy_hint}"
        ) from None
