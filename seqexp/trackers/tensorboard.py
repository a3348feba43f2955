"""``logger=tensorboard`` (the default): Lightning's TensorBoard logger, taking the callbacks' figures and
text samples too, and restarting its curves where a resumed run continues."""

from collections.abc import Mapping
from pathlib import Path

import numpy as np
from pytorch_lightning.loggers import TensorBoardLogger
from pytorch_lightning.utilities import rank_zero_only

from seqexp.run_layout import EVENT_FILES


class TensorBoardTracker(TensorBoardLogger):
    @rank_zero_only
    def show_figure(self, tag: str, image: np.ndarray, step: int) -> None:
        self.experiment.add_image(tag, image, global_step=step, dataformats="HWC")

    @rank_zero_only
    def show_text(self, tag: str, text: str, step: int) -> None:
        # TensorBoard renders text as Markdown; indenting every line makes it a code block, which keeps
        # line breaks and shows characters such as * and # as they are.
        self.experiment.add_text(tag, "\n".join(f"    {line}" for line in text.split("\n")), step)

    def continue_at(self, step: int | None, logged: Mapping[str, int]) -> bool:
        """Tell TensorBoard that the run restarts at ``step`` (at 0 for None, where an earlier attempt left
        events): its readers drop the points logged from there on by the earlier process, so the curves
        have no duplicated or rewound points."""
        from tensorboard.compat.proto.event_pb2 import Event, SessionLog

        writer = self.experiment
        if step is None and len(list(Path(writer.get_logdir()).glob(EVENT_FILES))) < 2:
            return False  # only this process's own file: a new run
        writer.file_writer.add_event(Event(step=step or 0, session_log=SessionLog(status=SessionLog.START)))
        writer.flush()
        return True
