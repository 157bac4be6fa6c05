"""A training run's settings: the request, a resumed run's record and the defaults, into a frozen TrainConfig.

:func:`resolve` is the one place where the settings of a run are decided:
what the user gave (the request's keys are what was chosen), what a resumed
checkpoint recorded for the rest, then the defaults that depend on other
settings (loss weights per VGG preprocessing, the checkpoint folder). Every
value is checked, whether it came from the command line, the Python API or a
checkpoint. Nothing is changed in place.
"""

from __future__ import annotations

import functools
import hashlib
import os
from collections.abc import Mapping
from dataclasses import fields, replace
from pathlib import Path
from typing import Any, NamedTuple, get_args, get_origin, get_type_hints

from .checkpoint import check_payload, read_checkpoint
from .config import TrainConfig
from .defaults import ADD_STYLE_ITERATIONS, ARCHITECTURES, BLOCKS, DEFAULT_WEIGHTS, DISTILL_PIXEL_WEIGHT
from .errors import FastNSTError, shown
from .limits import LIMITS, problem
from .losses import format_layers, parse_layers
from .paths import require_file, same_file
from .vgg import resolve_preprocess

__all__ = [
    "FIXED_ON_RESUME",
    "NOT_RECORDED",
    "Resumed",
    "add_style_request",
    "expand_styles",
    "file_digest",
    "read_resume",
    "request_of",
    "resolve",
    "setting_problem",
    "style_paths",
]

# Settings that define the optimisation problem: a resumed run must keep them
# (the batch size too, as batch x processes: see _check_global_batch).
FIXED_ON_RESUME = (
    "image_size",
    "style_size",
    "lr",
    "arch",
    "width",
    "n_residual",
    "block",
    "pixel_weight",
    "seed",
    "vgg_preprocess",
    "content_weight",
    "style_weight",
    "tv_weight",
    "content_layers",
    "style_layers",
)


# What runs recorded before --arch, --n-residual and --block existed used: Johnson's network at their --width.
RECORDED_BEFORE_ARCH = {"arch": "full", "n_residual": 5, "block": "conv"}

# Per-invocation choices, not part of a run's record.
NOT_RECORDED = (
    "resume", "overwrite", "progress", "device", "workers", "amp", "checkpoint_dir", "dist_timeout", "max_time", "compile", "channels_last",
    "max_pixels", "style_dir",
)  # fmt: skip


class Resumed(NamedTuple):
    """The checkpoint a run resumes from, and where it was read."""

    path: Path
    ckpt: dict[str, Any]


def read_resume(resume: str) -> Resumed:
    """``--resume``: a training checkpoint (a file, or the checkpoint folder holding last.pth), checked."""
    path = Path(resume)
    if path.is_dir():
        path = path / "last.pth"
    ckpt = read_checkpoint(path)
    if "optimizer" not in ckpt or "step" not in ckpt:
        raise FastNSTError(f"{path}: a model file, not a training checkpoint; resume from <checkpoint-dir>/last.pth")
    check_payload(ckpt, str(path))
    if not isinstance(ckpt["optimizer"], dict):
        raise FastNSTError(f"{path}: the optimizer state is damaged; resume from an earlier checkpoint or start a new run")
    return Resumed(path, ckpt)


def request_of(cfg: TrainConfig) -> dict[str, Any]:
    """A TrainConfig from the Python API as a request: the settings that differ from the defaults were chosen."""
    return {f.name: getattr(cfg, f.name) for f in fields(TrainConfig) if getattr(cfg, f.name) != f.default}


def resolve(request: Mapping[str, Any], checkpoint: Resumed | None = None, world_size: int = 1) -> TrainConfig:
    """The run's final settings: those in ``request`` (what the user gave), a resumed run's record
    for the others, then the defaults that depend on other settings; validated. A new object:
    the request's keys are what was chosen, so nothing has to travel beside it."""
    if bool(request.get("resume")) != (checkpoint is not None):
        raise ValueError("resolve: pass the checkpoint that read_resume(request['resume']) returned, and only with a resume")
    request = expand_styles(request)
    if checkpoint is not None and (checkpoint.ckpt.get("train_config") or {}).get("style_names"):
        request.pop("style_names", None)  # a resumed run keeps its styles' names, whatever its files are called now
    values = dict(request)
    if checkpoint is not None:
        values = _merge_recorded(request, checkpoint)
    cfg = TrainConfig.from_dict(values)
    if checkpoint is not None:
        _check_global_batch(cfg, checkpoint.ckpt.get("train_config") or {}, world_size)
        _check_same_count(cfg, checkpoint.ckpt.get("train_config") or {})
    _check_required(cfg)
    _validate_numbers(cfg)
    if checkpoint is not None:
        _check_same_style(cfg, checkpoint.ckpt.get("train_config") or {}, set(request))
        _check_same_teacher(cfg, checkpoint.ckpt.get("train_config") or {})
    preprocess = resolve_preprocess(cfg.vgg_preprocess, cfg.vgg_weights)
    defaults = DEFAULT_WEIGHTS[preprocess]
    pick = lambda given, default: default if given is None else given
    return replace(
        cfg,
        vgg_preprocess=preprocess,
        content_weight=pick(cfg.content_weight, defaults.content),
        style_weight=pick(cfg.style_weight, defaults.style),
        tv_weight=pick(cfg.tv_weight, defaults.tv),
        content_layers=format_layers(parse_layers(cfg.content_layers, "content-layers")),
        style_layers=format_layers(parse_layers(cfg.style_layers, "style-layers")),
        checkpoint_dir=pick(cfg.checkpoint_dir, default_checkpoint_dir(cfg.save_model)),
        sample_interval=pick(cfg.sample_interval, cfg.checkpoint_interval),
        width=pick(cfg.width, ARCHITECTURES[cfg.arch]["width"]),
        n_residual=pick(cfg.n_residual, ARCHITECTURES[cfg.arch]["n_residual"]),
        block=pick(cfg.block, ARCHITECTURES[cfg.arch]["block"]),
        pixel_weight=pick(cfg.pixel_weight, DISTILL_PIXEL_WEIGHT) if cfg.teacher else None,
    )


def _check_required(cfg: TrainConfig) -> None:
    """The settings a run cannot do without; a painting or a teacher to learn from, not both."""
    for key in ("dataset", "save_model"):
        if not getattr(cfg, key):
            raise FastNSTError(f"--{key.replace('_', '-')} is required (or --resume a checkpoint that records it)")
    if cfg.teacher and cfg.style_image:
        raise FastNSTError("--teacher brings its own style: give --style-image or --teacher, not both")
    if cfg.add_style and (cfg.style_image or cfg.teacher):
        raise FastNSTError("--add-style learns one painting into the --resume model: give no --style-image or --teacher with it")
    if not cfg.teacher and not cfg.style_image and not cfg.add_style:
        raise FastNSTError("--style-image is required (or --teacher a trained model to distil, or --resume a checkpoint that records it)")
    _check_style_lists(cfg)
    if cfg.pixel_weight is not None and not cfg.teacher:
        raise FastNSTError("--pixel-weight weighs the distillation's pixel term: it needs --teacher")
    if cfg.arch not in ARCHITECTURES:
        raise FastNSTError(f"--arch: {shown(cfg.arch, 40)!r} is not one of {', '.join(ARCHITECTURES)}")
    if cfg.block is not None and cfg.block not in BLOCKS:
        raise FastNSTError(f"--block: {shown(cfg.block, 40)!r} is not one of {', '.join(BLOCKS)}")


def _check_style_lists(cfg: TrainConfig) -> None:
    """A multi-style run's paintings and names agree (a record or the Python API could say otherwise)."""
    paintings = cfg.style_image if isinstance(cfg.style_image, list) else None
    names = cfg.style_names
    if paintings is not None and not all(isinstance(p, str) and p for p in paintings):
        raise FastNSTError("--style-image: the paintings are not all paths; the checkpoint is damaged or the call is wrong")
    if names is not None and not (isinstance(names, list) and all(isinstance(n, str) and n for n in names)):
        raise FastNSTError("style_names: not a list of names; the checkpoint is damaged or the call is wrong")
    expected = len(paintings) if paintings is not None else None
    if cfg.add_style:
        expected = None if names is None else max(2, len(names))
    if (paintings is not None and names is None) or (names is not None and len(names) != (expected or 1)) or (names and len(names) < 2):
        raise FastNSTError(
            f"style_names: {len(names or [])} names for {expected or 1} styles; give one name per painting (or leave style_names out)"
        )


def style_paths(cfg: TrainConfig) -> list[str]:
    """The paintings a run learns: one, several (a multi-style network), the one --add-style adds, or none (a distillation)."""
    if cfg.add_style:
        return [cfg.add_style]
    if isinstance(cfg.style_image, list):
        return list(cfg.style_image)
    return [cfg.style_image] if cfg.style_image else []


def expand_styles(request: Mapping[str, Any]) -> dict[str, Any]:
    """--style-dir as the list of its paintings; one painting in a list as a plain path (a single-style run,
    whose record every fastnst reads); several as a multi-style run, with their names (``style_names``)."""
    values = dict(request)
    folder = values.pop("style_dir", None)
    if folder:
        if values.get("style_image"):
            raise FastNSTError("give the paintings as --style-image A B ... or as --style-dir DIR, not both")
        values["style_image"] = _paintings_in(folder)
    styles = values.get("style_image")
    if isinstance(styles, (list, tuple)):
        if not styles or not all(isinstance(p, str) and p for p in styles):
            raise FastNSTError("--style-image: give the paintings' paths")
        if len(set(styles)) < len(styles):
            raise FastNSTError("--style-image: a painting is given twice; give each once")
        if problem("n_styles", len(styles)):
            raise FastNSTError(f"--style-image: {len(styles)} paintings; one network holds at most {int(LIMITS['n_styles'].high)}")
        values["style_image"] = styles[0] if len(styles) == 1 else list(styles)
        if len(styles) > 1:
            values.setdefault("style_names", unique_names([Path(p).stem for p in styles]))  # the API may name them
    return values


def _paintings_in(folder: str) -> list[str]:
    from .images import IMAGE_SUFFIXES

    path = Path(folder)
    if not path.is_dir():
        raise FastNSTError(f"--style-dir {folder}: not a folder; give the folder that holds the paintings")
    found = sorted(str(p) for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not found:
        raise FastNSTError(f"--style-dir {folder}: holds no paintings ({', '.join(IMAGE_SUFFIXES)}); put the paintings there")
    return found


def unique_names(stems: list[str]) -> list[str]:
    """Style names from file names; a name that repeats gets _2, _3 ... (``--style NAME`` must find one)."""
    out: list[str] = []
    for stem in stems:
        name, k = stem, 2
        while name in out:
            name, k = f"{stem}_{k}", k + 1
        out.append(name)
    return out


# What an --add-style run takes from the model it extends, unless given: the same losses, sizes and photos.
_INHERITED = (
    "dataset", "vgg_weights", "vgg_preprocess", "content_weight", "style_weight", "tv_weight", "content_layers", "style_layers",
    "image_size", "style_size", "batch_size", "lr", "seed", "arch",
)  # fmt: skip
_NETWORK = ("width", "n_residual", "block")


def add_style_request(request: Mapping[str, Any]) -> dict[str, Any]:
    """--add-style PAINTING --resume MODEL as the request of a new run that extends MODEL by one style.

    The rerun of the same command after an interruption (--resume names this run's own
    checkpoint, which records the painting) continues that run instead."""
    from .checkpoint import load_model

    if not request.get("resume"):
        raise FastNSTError("--add-style needs --resume MODEL: the model (or checkpoint) to teach the new painting")
    if request.get("style_dir") or request.get("style_image") or request.get("teacher"):
        raise FastNSTError(
            "--add-style learns one painting into the --resume model: give no --style-image, --style-dir or --teacher with it"
        )
    base = Path(request["resume"])
    base = base / "last.pth" if base.is_dir() else base
    painting = require_file(request["add_style"])
    digest = file_digest(painting)
    own = _own_add_style_run(request, base, digest)
    if own is not None:  # the command run again after an interruption: continue that run (the painting may have moved)
        return {**request, "resume": str(own)}
    if not request.get("save_model"):
        raise FastNSTError("--add-style writes a new model: give --save-model PATH")
    model, info = load_model(base)
    config, record = model.config, info["train_config"]
    if config.pixel_range != 1.0:
        raise FastNSTError(f"{base}: a pytorch/examples model; --add-style extends models trained by fastnst")
    if problem("n_styles", config.n_styles + 1):
        raise FastNSTError(f"{base}: holds {config.n_styles} styles, the most one network holds; train another model")
    known = _known_digests(record, config.n_styles)
    if digest in known:
        raise FastNSTError(f"{painting}: already style {known.index(digest)} ({info['styles'][known.index(digest)]}) of {base}")
    for key in _NETWORK:
        if key in request and request[key] != getattr(config, key):
            raise FastNSTError(f"--{key.replace('_', '-')}: the network is {base}'s ({key} {getattr(config, key)}); leave it out")
    values = {k: record[k] for k in _INHERITED if record.get(k) is not None and k not in request}
    values.update(request)
    values.update({k: getattr(config, k) for k in _NETWORK})
    if "iterations" not in request and "epochs" not in request:
        values["iterations"] = ADD_STYLE_ITERATIONS
    values.update(resume=None, base_model=str(base), style_names=unique_names([*info["styles"], painting.stem]), base_sha256=known)
    return values


def _known_digests(record: dict[str, Any], n_styles: int) -> list[str | None]:
    """The sha256 of each style's painting that a model's record keeps (None where it keeps none): a
    multi-style run's list, an --add-style run's base digests and its own, a single style's one."""
    own = record.get("style_sha256")
    if isinstance(own, list) and len(own) == n_styles:
        return [d if isinstance(d, str) else None for d in own]
    base = record.get("base_sha256")
    base = [d if isinstance(d, str) else None for d in base] if isinstance(base, list) else []
    if record.get("add_style") and isinstance(own, str):
        base.append(own)
    if n_styles == 1 and isinstance(own, str):
        base = [own]
    return (base + [None] * n_styles)[:n_styles]


def _own_add_style_run(request: Mapping[str, Any], base: Path, digest: str) -> Path | None:
    """The checkpoint of an --add-style run of this painting on this base, when the command is run again:
    --resume names that checkpoint, or the run's checkpoint folder already holds it."""
    candidates = [base]
    if request.get("save_model"):
        candidates.append(Path(request.get("checkpoint_dir") or default_checkpoint_dir(request["save_model"])) / "last.pth")
    for path in candidates:
        if not path.is_file():
            continue
        ckpt = read_checkpoint(path)
        record = ckpt.get("train_config") if isinstance(ckpt.get("train_config"), dict) else {}
        ours = "optimizer" in ckpt and record.get("add_style") and record.get("style_sha256") == digest
        if ours and (path == base or same_file(record.get("base_model") or "", base)):
            return path
    return None


def _check_same_teacher(cfg: TrainConfig, old: dict[str, Any]) -> None:
    """A resumed distillation keeps its teacher: the same file content, wherever it now lies."""
    recorded = old.get("teacher_sha256")
    if cfg.teacher and isinstance(recorded, str) and file_digest(require_file(cfg.teacher)) != recorded:
        raise FastNSTError(
            f"{cfg.teacher}: its content differs from the teacher this run was learning from; a resumed run keeps its teacher. "
            "Start a new run (without --resume), or give the original teacher back"
        )


def _merge_recorded(request: Mapping[str, Any], checkpoint: Resumed) -> dict[str, Any]:
    """The request over the settings a resumed run recorded; those that define the run cannot change."""
    path, ckpt = checkpoint
    old = {**RECORDED_BEFORE_ARCH, **_check_recorded(ckpt.get("train_config") or {}, path)}
    _check_same_source(request, old)
    for key in FIXED_ON_RESUME:
        if key in request and old.get(key) is not None and request[key] != old[key]:
            raise FastNSTError(f"--{key.replace('_', '-')} cannot change when resuming (the run used {old[key]}); start a new run instead")
    values = {f.name: old[f.name] for f in fields(TrainConfig) if f.name not in NOT_RECORDED and old.get(f.name) is not None}
    values.update(request)
    if "epochs" in request and "iterations" not in request:  # the run's length given anew, in epochs
        values["iterations"] = None
    if "iterations" in request:  # ... or in steps: the record must not keep the old epochs
        values["epochs"] = None
    values.setdefault("checkpoint_dir", str(path.parent))
    values["resume"] = str(path)
    return values


def _check_same_source(request: Mapping[str, Any], old: dict[str, Any]) -> None:
    """A resumed run keeps learning what it learnt: a painting, or a teacher's pictures."""
    if request.get("teacher") and old.get("style_image"):
        raise FastNSTError(
            f"this run learns the painting {shown(old['style_image'], 200)}: "
            "--teacher starts a distillation, as a new run (without --resume)"
        )
    if request.get("style_image") and old.get("teacher"):
        raise FastNSTError(
            f"this run distils {shown(old['teacher'], 200)}: --style-image starts a training on a painting, as a new run (without --resume)"
        )


def default_checkpoint_dir(save_model: str) -> str:
    return str(Path(save_model).with_suffix("")) + "_run"


def _check_global_batch(cfg: TrainConfig, old: dict[str, Any], world_size: int) -> None:
    """A resumed run keeps its global batch (per-process batch x processes).

    The data order and the averaged gradient depend only on the global batch,
    so resuming on another number of processes with the per-process batch
    adjusted continues the very same run; anything else would silently be a
    different optimisation problem.
    """
    old_batch, old_world = old.get("batch_size"), int(old.get("world_size") or 1)
    if not old_batch or cfg.batch_size * world_size == old_batch * old_world:
        return
    if world_size == old_world:
        raise FastNSTError(f"--batch-size cannot change when resuming (the run used {old_batch}); start a new run instead")
    total = old_batch * old_world
    fix = f"--batch-size {total // world_size}" if total % world_size == 0 else f"a number of processes that divides {total}"
    raise FastNSTError(
        f"this run used a global batch of {total} ({old_batch} per process x {old_world} process(es)); "
        f"with {world_size} process(es), resume with {fix} to keep it, or start a new run"
    )


@functools.cache
def _kinds() -> dict[str, tuple[tuple[type, ...], bool]]:
    """Per TrainConfig field: the accepted Python types and whether None is allowed."""
    kinds = {}
    for name, hint in get_type_hints(TrainConfig).items():
        args = get_args(hint) or (hint,)
        kinds[name] = (tuple(get_origin(a) or a for a in args if a is not type(None)), type(None) in args)
    return kinds


def setting_problem(name: str, value: Any) -> str | None:
    """Why ``value`` cannot be the TrainConfig setting ``name`` (type, finiteness, range), or None."""
    types, optional = _kinds()[name]
    if value is None:
        return None if optional else "a value is required"
    if name in LIMITS:
        return problem(name, value)
    if isinstance(value, bool) and bool not in types or not isinstance(value, types):
        return f"expected {' or '.join(t.__name__ for t in types)}, got {value!r}"
    return None


def _validate_numbers(cfg: TrainConfig) -> None:
    """Every setting in range, whether it came from the command line, the Python API or a checkpoint."""
    for f in fields(TrainConfig):
        wrong = setting_problem(f.name, getattr(cfg, f.name))
        if wrong:
            raise FastNSTError(f"--{f.name.replace('_', '-')}: {wrong}")


def _check_recorded(old: Any, path: Path) -> dict[str, Any]:
    """A checkpoint's train_config, each known setting type- and range-checked before it is used."""
    if not isinstance(old, dict):
        raise FastNSTError(f"{path}: train_config is a {type(old).__name__}, not a dict; the checkpoint is damaged")
    world = old.get("world_size")
    if world is not None and (isinstance(world, bool) or not isinstance(world, int) or not 1 <= world <= 1 << 20):
        raise FastNSTError(f"{path}: train_config.world_size is {world!r}, not a number of processes; the checkpoint is damaged")
    for key, value in old.items():
        wrong = setting_problem(key, value) if key in _kinds() and key not in NOT_RECORDED else None
        if wrong:
            raise FastNSTError(f"{path}: train_config.{key}: {wrong}; the checkpoint is damaged or was edited")
    return old


def file_digest(path: str | os.PathLike) -> str:
    """SHA-256 of a file: how a resumed run knows its painting was not swapped."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _recorded_paths(old: dict[str, Any]) -> Any:
    """The paintings a run's record says it learns, as a list (whatever a damaged record holds otherwise)."""
    paths = old.get("add_style") or old.get("style_image")
    return [paths] if isinstance(paths, str) else paths


def _check_same_count(cfg: TrainConfig, old: dict[str, Any]) -> None:
    """A resumed run learns as many paintings as it did."""
    paths, old_paths = style_paths(cfg), _recorded_paths(old)
    if paths and isinstance(old_paths, list) and len(old_paths) != len(paths):
        raise FastNSTError(
            f"--style-image: this run learns {len(old_paths)} painting(s), not {len(paths)}; a resumed run keeps its styles. "
            "Start a new run for other paintings (without --resume)"
        )


def _check_same_style(cfg: TrainConfig, old: dict[str, Any], chosen: set[str]) -> None:
    """A resumed run keeps learning its own paintings, even if files of those names were replaced."""
    paths = style_paths(cfg)
    if not paths:  # a distillation: _check_same_teacher
        return
    recorded = old.get("style_sha256")
    recorded = [recorded] if isinstance(recorded, str) else recorded
    old_paths = _recorded_paths(old)
    for i, painting in enumerate(paths):
        style = require_file(painting)
        if isinstance(recorded, list) and i < len(recorded) and isinstance(recorded[i], str):
            if file_digest(style) == recorded[i]:
                continue
            why = "its content differs from the painting this run was learning"
        elif "style_image" in chosen and isinstance(old_paths, list) and i < len(old_paths) and not same_file(style, old_paths[i]):
            why = f"this run was learning {shown(old_paths[i], 200)}"
        else:
            continue
        raise FastNSTError(
            f"{style}: {why}; a resumed run keeps its style. Start a new run for another painting (without --resume), "
            "or give the original painting back"
        )
