"""fastnst.train_outputs: where a training run writes, checked and cleaned up."""

from __future__ import annotations

from pathlib import Path

from fastnst.train_outputs import quoted, remove_if_unused


def test_a_failed_run_leaves_no_empty_folder(tmp_path: Path) -> None:
    empty, used = tmp_path / "empty_run", tmp_path / "used_run"
    for folder in (empty, used):
        (folder / "samples").mkdir(parents=True)
        (folder / ".fastnst.lock").write_bytes(b"")
        (folder / "metrics.jsonl").write_bytes(b"")
    (used / "metrics.jsonl").write_text('{"step": 1}\n')
    remove_if_unused([empty, used])
    assert not empty.exists() and (used / "metrics.jsonl").exists()


def test_printed_commands_can_be_pasted() -> None:
    assert quoted("my model_run/last.pth") == "'my model_run/last.pth'"
    assert quoted("-r_run/last.pth") == "./-r_run/last.pth"
    assert quoted(Path("run/last.pth")) == "run/last.pth"
