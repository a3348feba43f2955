"""Files under the data folder: read text as a user would be told, write atomically, download verified.

Every write goes to a temporary file beside the target and is moved into place with os.replace, so an
interrupted build or download never leaves a half file that a later run would take for a good one.
"""

import hashlib
import http.client
import logging
import os
import tempfile
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from seqexp.errors import ConfigError

log = logging.getLogger(__name__)

DOWNLOAD_TIMEOUT_S = 30
CHUNK = 1 << 20


def existing_file(path: str | Path, key: str, expected: str) -> Path:
    """``path`` if it is a file, else ConfigError ``<key>='...' does not exist: give <expected>``."""
    file = Path(path).expanduser()
    if not file.is_file():
        what = "is a directory" if file.is_dir() else "does not exist"
        raise ConfigError(f"{key}={str(path)!r} {what}: give {expected}")
    return file


def read_text_file(path: str | Path, key: str = "data.path") -> str:
    """The contents of a UTF-8 text file; ConfigError naming ``key`` if it is missing, empty or not UTF-8."""
    path = existing_file(path, key, "the path of a UTF-8 text file")
    data = path.read_bytes()
    if not data:
        raise ConfigError(f"{key}={str(path)!r} is empty: give a UTF-8 text file with some text in it")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ConfigError(
            f"{key}={str(path)!r} is not UTF-8 text (byte 0x{data[error.start]:02x} at offset {error.start} "
            "is invalid): convert it to UTF-8 first, e.g. with iconv"
        ) from None


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def write_atomically(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Call ``write`` on a temporary file beside ``path``, then move it into place; on any failure
    the temporary file is removed and ``path`` is left as it was."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        os.chmod(temp, 0o644)  # mkstemp makes files private; a cache is as readable as any other file
        with os.fdopen(fd, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


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
