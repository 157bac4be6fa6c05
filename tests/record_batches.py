"""Test aid: record the photo indices of every batch each rank draws, to check the sharding of a real run.

``python -m tests.record_batches train ...`` is ``fastnst train ...`` (torchrun can launch it)
with each rank appending ``{"step", "indices"}`` lines to ``$FASTNST_TEST_BATCHES/rank<R>.jsonl``;
:func:`recording` does the same inside a process. With loader workers, batches are recorded
when drawn, a little ahead of the step that trains on them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from fastnst import training
from fastnst.data import TrainBatchSampler

ENV = "FASTNST_TEST_BATCHES"


def _recording_sampler(folder: Path) -> type[TrainBatchSampler]:
    class Recording(TrainBatchSampler):
        def __iter__(self) -> Iterator[list[tuple[int, int]]]:
            folder.mkdir(parents=True, exist_ok=True)
            with (folder / f"rank{self.rank}.jsonl").open("a") as f:
                for step, batch in enumerate(super().__iter__(), start=self.start_step + 1):
                    f.write(json.dumps({"step": step, "indices": [i for i, _ in batch]}) + "\n")
                    f.flush()
                    yield batch

    return Recording


@contextmanager
def recording(folder: Path) -> Iterator[None]:
    """Training runs in this process record their batches into ``folder`` until the block ends."""
    original = training.TrainBatchSampler
    training.TrainBatchSampler = _recording_sampler(Path(folder))  # type: ignore[misc]
    try:
        yield
    finally:
        training.TrainBatchSampler = original  # type: ignore[misc]


if __name__ == "__main__":
    from fastnst.__main__ import run

    with recording(Path(os.environ[ENV])):
        run()
