"""``data=tinyshakespeare``: karpathy/char-rnn's 1,115,394-character benchmark file.

Downloaded once into the data folder and checked against its sha256 (a file that does not match is not
kept), or read from ``data.path`` for machines without network. A cached or local copy is checked
against the same hash, so results stay comparable with everyone else's tinyshakespeare numbers.
"""

from pathlib import Path
from typing import Any

from seqexp.data.files import download_verified, one_at_a_time, sha256_file
from seqexp.data.text import TextDataModule
from seqexp.errors import ConfigError


class TinyShakespeareDataModule(TextDataModule):
    def __init__(
        self, *, data_dir: str, url: str, sha256: str, path: str | None, **text_options: Any
    ) -> None:
        super().__init__(data_dir=data_dir, path=path, **text_options)
        self.cache_path = self.data_dir / "tinyshakespeare" / "input.txt"
        self.url = url
        self.sha256 = sha256.lower()

    def source_file(self) -> Path:
        if self.path:
            local = Path(self.path).expanduser()
            if local.is_file() and sha256_file(local) != self.sha256:
                raise ConfigError(
                    f"data.path={self.path!r} is not the tinyshakespeare file (its sha256 is not "
                    f"{self.sha256}): for any other text use data=text data.path={self.path}"
                )
            return local
        with one_at_a_time(self.cache_path.parent):
            if not (self.cache_path.is_file() and sha256_file(self.cache_path) == self.sha256):
                hint = "download it elsewhere and pass the copy with data.path=/path/to/input.txt"
                download_verified(self.url, self.sha256, self.cache_path, local_copy_hint=hint)
        return self.cache_path
