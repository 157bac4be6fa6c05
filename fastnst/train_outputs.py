"""Where a training run writes: its checkpoint folder, the model file and the samples, checked before anything slow.

A run that would overwrite a dataset photo, the painting, another run's
checkpoints or a file that is not a model fails in its first second, not
after hours; folders made for the outputs are removed again when the run
fails before using them.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path
from typing import Any

from .atomic import check_output_free, check_replaceable
from .checkpoint import check_payload, read_checkpoint
from .config import TrainConfig
from .errors import FastNSTError
from .images import READ_SUFFIXES
from .paths import check_not_inputs, inside, same_file
from .train_settings import style_paths

__all__ = ["check_outputs", "quoted", "remove_if_unused"]

# --save-model must not be named like a picture, a video or an export (a dataset photo, the painting).
_NOT_MODEL_SUFFIXES = (*READ_SUFFIXES, ".onnx", ".mp4", ".mkv", ".webm", ".mov", ".avi", ".json", ".txt")


def quoted(path: str | os.PathLike) -> str:
    """``path`` as it can be pasted into a shell command: quoted, and never read as a flag."""
    text = os.fspath(path)
    return shlex.quote(f"./{text}" if text.startswith("-") else text)


def check_outputs(cfg: TrainConfig, created: list[Path] | None = None, ckpt: dict[str, Any] | None = None) -> Path:
    """Fail in the first second, not after hours, on unwritable or occupied outputs.
    Folders made here are added to ``created`` (see remove_if_unused)."""
    ckpt_dir = Path(cfg.checkpoint_dir)
    last = ckpt_dir / "last.pth"
    if ckpt is not None and not cfg.overwrite:
        _check_resume_targets(cfg, ckpt, last)
    if not cfg.resume and last.exists() and not cfg.overwrite:
        raise FastNSTError(
            f"{ckpt_dir}: holds an earlier run; continue it with --resume {quoted(last)}, "
            "or start over with --overwrite (or another --checkpoint-dir)"
        )
    if same_file(ckpt_dir, cfg.dataset) or inside(ckpt_dir, cfg.dataset):
        raise FastNSTError(
            f"{ckpt_dir}: inside the --dataset folder, where the sample pictures written there would become training photos; "
            "choose a --checkpoint-dir (or a --save-model) outside it"
        )
    save = Path(cfg.save_model)
    if save.suffix.lower() in _NOT_MODEL_SUFFIXES:
        raise FastNSTError(f"{save}: --save-model writes a PyTorch model, not a '{save.suffix}' file; give it the .pth suffix")
    if save.is_dir() or cfg.save_model.endswith(("/", os.sep)):  # Path() drops a trailing slash: "f.pth/" names a folder
        raise FastNSTError(f"{cfg.save_model}: a folder; --save-model is the model file to write, e.g. {save / 'model.pth'}")
    inputs = [
        *((path, "the --add-style painting" if cfg.add_style else "the --style-image") for path in style_paths(cfg)),
        (cfg.base_model, "the model --add-style extends"),
        (cfg.teacher, "the --teacher model"),
        (cfg.sample_image, "the --sample-image"),
        (cfg.vgg_weights, "the --vgg-weights file"),
    ]
    check_not_inputs([(save, "--save-model"), (last, "the run's checkpoint")], inputs)
    check_not_inputs([(save, "--save-model")], [(cfg.resume, "the checkpoint being resumed")])
    _check_run_files(ckpt_dir, save)
    samples = ckpt_dir / "samples"
    for path, what in [*inputs, (cfg.dataset, "the --dataset folder")]:
        if path and (inside(path, samples) or same_file(path, samples)):
            raise FastNSTError(f"{path}: {what} lies in {samples}, where this run writes its samples; move it out first")
    if not cfg.resume:  # a resumed run's own model: _check_resume_targets
        check_output_free(save, cfg.overwrite, "pass --overwrite to replace it or choose another --save-model")
    check_replaceable(save)
    for folder in (ckpt_dir, Path(cfg.save_model).parent):
        try:
            _make_folder(folder, created)
            probe = folder / f".fastnst-write-test-{os.getpid()}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as e:
            raise FastNSTError(f"{folder}: cannot write here ({e.strerror or e}); choose another folder") from None
    return ckpt_dir


def _check_run_files(ckpt_dir: Path, save: Path) -> None:
    """The names the run writes in its checkpoint folder are its own: --save-model is none of
    them, and none is a symbolic link (writing through one would fill a photo or the
    painting with metrics or samples)."""
    own = [ckpt_dir, *(ckpt_dir / name for name in _RUN_FILES)]
    if any(same_file(save, p) for p in own) or inside(save, ckpt_dir / "samples"):
        raise FastNSTError(
            f"{save}: --save-model is one of the files the run keeps in {ckpt_dir}; choose another --save-model or --checkpoint-dir"
        )
    link = next((p for p in own[1:] if p.is_symlink()), None)
    if link is not None:
        raise FastNSTError(f"{link}: a symbolic link (to {os.readlink(link)}); fastnst writes its run files itself: remove the link first")


# What a run writes in its checkpoint folder (besides --save-every copies).
_RUN_FILES = ("last.pth", "metrics.jsonl", "samples")


def _make_folder(folder: Path, created: list[Path] | None) -> None:
    """mkdir -p, noting in ``created`` the outermost folder that did not exist before."""
    missing = [p for p in (folder, *folder.parents) if not p.exists()]
    folder.mkdir(parents=True, exist_ok=True)
    if missing and created is not None:
        created.append(missing[-1])


def remove_if_unused(folders: list[Path]) -> None:
    """A run that failed before writing anything leaves no empty folders behind.

    Only folders this run created, and only while they hold nothing but empty
    folders, the run's lock file and an empty metrics log; anything else in them is kept.
    """
    for top in folders:
        for here, _, files in os.walk(top, topdown=False):
            try:
                ours = [os.path.join(here, f) for f in files if f in (".fastnst.lock", "metrics.jsonl")]
                if len(ours) == len(files) and all(os.path.getsize(f) == 0 for f in ours):
                    for f in ours:
                        os.unlink(f)
                os.rmdir(here)
            except OSError:  # not empty (or not ours to remove): keep it and what holds it
                break


def _check_resume_targets(cfg: TrainConfig, ckpt: dict[str, Any], last: Path) -> None:
    """A resumed run replaces its own earlier files without --overwrite, never another's:
    the checkpoint folder's last.pth must be the resumed file or an older one of the same
    run, and the --save-model file this run's model (see _same_run)."""
    old, step = ckpt.get("train_config") or {}, ckpt.get("step") or 0
    if last.exists() and not same_file(last, cfg.resume):
        other = _recorded(last)
        if other is None or not _same_run(old, other[0]):
            raise FastNSTError(
                f"{last}: holds another training run's checkpoint; resume into another --checkpoint-dir, or pass --overwrite to replace it"
            )
        if other[1] >= step:  # replacing it would lose steps (or a copy made on purpose)
            raise FastNSTError(
                f"{last}: holds this run's checkpoint of step {other[1]}, not older than the resumed step {step}; resume from it, "
                f"or pass --overwrite to go on from step {step} and replace it"
            )
    save = Path(cfg.save_model)
    if save.exists():
        other = _recorded(save)
        if other is None or not _same_run(old, other[0]):
            raise FastNSTError(
                f"{save}: already exists and is not this run's model; pass --overwrite to replace it or choose another --save-model"
            )


def _recorded(path: Path) -> tuple[dict[str, Any], int] | None:
    """The train_config and step a fastnst file records (None: not a readable fastnst file)."""
    try:
        payload = read_checkpoint(path)
        _, _, info = check_payload(payload, str(path))
    except FastNSTError:
        return None
    if payload.get("format") != "fastnst":
        return None
    done = info["train_config"].get("steps_done")  # a model file records how far its run got
    return info["train_config"], info["step"] if info["step"] is not None else done if type(done) is int else 0


def _same_run(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Do two records come from one training run? By its run_id; files of fastnst versions
    that recorded none, by painting, photos and seed."""
    if a.get("run_id") or b.get("run_id"):
        return a.get("run_id") == b.get("run_id")
    keys = ("style_sha256", "style_image", "dataset", "seed")
    return bool(a) and all(a.get(k) == b.get(k) for k in keys)
