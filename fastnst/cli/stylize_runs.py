"""Running a :class:`~fastnst.cli.stylize.StylizeJob`: images, videos, the webcam or the Gatys optimizer.

Each runner takes the validated job (never the command line), plans the
outputs, builds the stylizer and reports what was written; the exit status is
1 when some inputs could not be read (a partial success), else 0.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..defaults import STYLIZE_BATCH
from ..errors import FastNSTError
from .common import note
from .stylize import StylizeJob

if TYPE_CHECKING:
    from ..config import StylizeConfig
    from ..multistyle import StyleChoice
    from ..stylizer import Stylizer

__all__ = ["run"]


def run(job: StylizeJob) -> int:
    """Run the job under its --max-pixels (Pillow's limit, for the image modes); its exit status."""
    from ..images import pixel_limit

    runners: dict[str, Callable[[StylizeJob], int]] = {"images": _images, "videos": _videos, "webcam": _webcam, "gatys": _gatys}
    with pixel_limit(job.cfg.max_pixels):
        return runners[job.mode](job)


def _images(job: StylizeJob) -> int:
    from ..files import plan_outputs

    cfg, model = job.cfg, job.cfg.model[0]
    pairs = plan_outputs(list(cfg.inputs), cfg.output, overwrite=cfg.overwrite, protect=[(model, "the --model file")])
    return _write_images(cfg, pairs, _stylizer(cfg, model, job.choice).stylize_many)


def _gatys(job: StylizeJob) -> int:
    from ..files import plan_outputs
    from ..gatys import GatysOptimizer

    cfg, settings = job.cfg, job.gatys
    assert settings is not None  # resolve() sets it for this mode
    protect = [(s, "the --style-image") for s in settings.style_images] + [(settings.vgg_weights, "the --vgg-weights file")]
    pairs = plan_outputs(list(cfg.inputs), cfg.output, overwrite=cfg.overwrite, protect=protect)
    if settings.save_every:
        _check_snapshot_folders(job, pairs)
    optimizer = GatysOptimizer(settings)
    return _write_images(cfg, pairs, lambda items: optimizer.stylize_many(items, output_of=lambda key: key[1]))


def _check_snapshot_folders(job: StylizeJob, pairs: list) -> None:
    """--save-every writes into <output>_iterations/: free (or --overwrite), and holding none of the inputs."""
    from ..gatys import snapshot_path
    from ..paths import inside

    settings = job.gatys
    assert settings is not None
    inputs = [(src, "an input image") for src, _ in pairs] + [(s, "a --style-image") for s in settings.style_images]
    if settings.vgg_weights:  # and the sidecar that says how to feed them
        weights = settings.vgg_weights
        inputs += [(weights, "the --vgg-weights file"), (Path(weights).with_suffix(".json"), "the --vgg-weights sidecar")]
    folders = [snapshot_path(dst, 0).parent for _, dst in pairs]
    for (_, dst), folder in zip(pairs, folders):
        within = [(p, what) for p, what in inputs if inside(p, folder)]
        within += [(out, "the output of another input") for _, out in pairs if inside(out, folder)]
        if within:
            raise FastNSTError(f"{within[0][0]}: {within[0][1]} lies in {folder}, where --save-every writes; move it out first")
        if folders.count(folder) > 1:
            raise FastNSTError(
                f"{folder}: --save-every would write the snapshots of two inputs there ({dst.name} and another of that name)"
            )
        if folder.exists() and not job.cfg.overwrite:
            raise FastNSTError(f"{folder}: already exists (--save-every writes there); pass --overwrite or choose another --output")


def _write_images(cfg: StylizeConfig, pairs: list, process: Callable) -> int:
    """Run ``process`` (a stylize_many) over the pairs; exit status 1 if some inputs could not be read."""
    from ..files import process_files

    failed = process_files(process, pairs, progress=cfg.progress, overwrite=cfg.overwrite, max_size=cfg.max_size)
    done = len(pairs) - failed
    where = pairs[0][1] if len(pairs) == 1 else Path(cfg.output or "")  # a file, or the folder that mirrors the inputs
    print(f"wrote {done} image(s){f' to {where}' if done else ''}", file=sys.stderr)
    if failed:
        print(f"fastnst: {failed} input(s) could not be read or stylized (see warnings above)", file=sys.stderr)
        return 1
    return 0


def _stylizer(cfg: StylizeConfig, model: str, choice: StyleChoice | None = None) -> Stylizer:
    """The stylizer of ``model``, painting the style ``choice`` asks for (a multi-style model's)."""
    from ..backends import load_backend
    from ..providers import parse_providers

    backend = load_backend(model, device=cfg.device, **({"providers": parse_providers(cfg.providers)} if cfg.providers else {}))
    if choice is not None and choice.given:
        backend = _chosen(backend, choice)
    return _stylizer_of(cfg, backend)


def _chosen(backend: Any, choice: StyleChoice) -> Any:
    from ..multistyle import style_weights

    names = backend.info.get("styles") or []
    if len(names) < 2:
        raise FastNSTError(
            f"{backend.info.get('path')}: holds one style ({backend.info.get('style')}); --style-index, --mix and --style NAME "
            "(with --model) choose among the styles of a multi-style model ('fastnst train --style-image A B ...')"
        )
    try:
        return backend.with_style(style_weights(names, choice))
    except FastNSTError as e:
        raise FastNSTError(f"{backend.info.get('path')}: {e}") from None


def _stylizer_of(cfg: StylizeConfig, backend: Any) -> Stylizer:
    from ..memory import parse_bytes
    from ..stylizer import Stylizer

    return Stylizer(
        backend,
        preserve_color=cfg.preserve_color,
        strength=cfg.strength,
        max_size=cfg.max_size,
        batch_size=cfg.batch_size or STYLIZE_BATCH,
        max_memory=parse_bytes(cfg.max_memory) if cfg.max_memory else None,
        tile_size=cfg.tile_size,
        log=note if cfg.progress else None,
    )


def _sweep(cfg: StylizeConfig, stylizer: Stylizer) -> Callable[[float], Stylizer]:
    """--sweep A,B: the stylizer at t (0 at the first frame, 1 at the last), blending style A into B."""
    from ..multistyle import parse_sweep, sweep_weights

    backend, names = stylizer.backend, stylizer.info.get("styles") or []
    if len(names) < 2:
        raise FastNSTError(f"{stylizer.info.get('path')}: holds one style; --sweep blends two styles of a multi-style model")
    try:
        a, b = parse_sweep(cfg.sweep or "", names)
    except FastNSTError as e:
        raise FastNSTError(f"{stylizer.info.get('path')}: {e}") from None
    return lambda t: _stylizer_of(cfg, backend.with_style(sweep_weights(a, b, len(names), t)))


def _webcam_models(job: StylizeJob) -> list[tuple[str, Stylizer]]:
    """(name, stylizer) per --model; one multi-style model with no style chosen gives one entry per
    style (sharing the network), so the m key cycles through its styles."""
    cfg = job.cfg
    models = cfg.model or ()
    if len(models) == 1 and not job.choice.given:
        stylizer = _stylizer(cfg, models[0])
        names = stylizer.info.get("styles") or []
        if len(names) > 1:
            backend = stylizer.backend
            return [(f"{Path(models[0]).stem}: {n}", _stylizer_of(cfg, backend.with_style(w))) for n, w in _one_hots(len(names), names)]
        return [(Path(models[0]).stem, stylizer)]
    return [(Path(m).stem, _stylizer(cfg, m, job.choice)) for m in models]


def _one_hots(n: int, names: list[str]) -> list[tuple[str, list[float]]]:
    return [(name, [1.0 if j == i else 0.0 for j in range(n)]) for i, name in enumerate(names)]


def _videos(job: StylizeJob) -> int:
    """Each INPUT video to its output, one after the other (each one is batched)."""
    from ..files import plan_outputs
    from ..stabilize import Stabilizer
    from ..video import VIDEOS, stylize_video

    cfg, model = job.cfg, job.cfg.model[0]
    pairs = plan_outputs(list(cfg.inputs), cfg.output, overwrite=cfg.overwrite, kind=VIDEOS, protect=[(model, "the --model file")])
    stylizer = _stylizer(cfg, model, job.choice)
    restyle = _sweep(cfg, stylizer) if cfg.sweep else None
    short = 0
    for src, dst in pairs:
        post = Stabilizer(job.stabilize) if job.stabilize is not None else None  # fresh per video: no flow across files
        stats = stylize_video(
            stylizer, src, dst, post=post, progress=cfg.progress, keep_audio=not cfg.no_audio, overwrite=cfg.overwrite,
            max_pixels=cfg.max_pixels, process_size=cfg.process_size, restyle=restyle,
        )  # fmt: skip
        scaled = f", stylized at {stats.processed[0]}x{stats.processed[1]}" if stats.processed != stats.size else ""
        print(f"wrote {dst}: {stats.frames} frames in {stats.seconds:.1f} s ({stats.fps:.1f} frames/s{scaled})", file=sys.stderr)
        if stats.missing:
            short += 1
            print(
                f"fastnst: warning: {src}: the file announces {stats.expected} frames but only {stats.frames} could be decoded "
                f"(it is truncated or damaged); {dst} holds those {stats.frames}",
                file=sys.stderr,
            )
    if short:
        print(f"fastnst: {short} video(s) were incomplete (see warnings above)", file=sys.stderr)
    return 1 if short else 0


def _check_record(cfg: StylizeConfig) -> None:
    """--record PATH: a video suffix, not one of the inputs, free (or --overwrite), in a writable folder."""
    from ..atomic import check_output_free
    from ..paths import check_not_inputs, check_writable
    from ..video import check_video_suffix

    record = cfg.record or ""
    check_video_suffix(record)
    inputs = [(cfg.webcam, "the video given to --webcam"), *((m, "a --model file") for m in cfg.model or ())]
    check_not_inputs([(record, "--record")], inputs)
    if Path(record).is_dir():
        raise FastNSTError(f"{record}: is a folder; --record is the video file to write")
    check_output_free(record, cfg.overwrite)
    check_writable(Path(record).parent, "--record")


def _webcam(job: StylizeJob) -> int:
    from ..webcam import NoDisplay, WindowDisplay, open_source, run_webcam

    cfg = job.cfg
    if cfg.record:
        _check_record(cfg)
    models = _webcam_models(job)
    source = open_source(cfg.webcam, realtime=not cfg.all_frames, max_pixels=cfg.max_pixels)
    display = NoDisplay() if cfg.no_display else WindowDisplay(f"fastnst: {source.name}")
    stats = run_webcam(
        models, source, display=display, record=cfg.record, max_frames=cfg.max_frames, stabilize=job.stabilize,
        keep_all=cfg.all_frames, side_by_side_view=cfg.side_by_side, progress=cfg.progress, overwrite=cfg.overwrite,
        process_size=cfg.process_size, target_fps=cfg.target_fps,
    )  # fmt: skip
    sizing = f" (target {cfg.target_fps:g})" if cfg.target_fps is not None else ""
    sizing += f", {stats.processed_text}" if cfg.process_size is not None or cfg.target_fps is not None else ""
    print(
        f"{stats.frames} frames in {stats.seconds:.1f} s: {stats.fps:.1f} frames/s{sizing}, mean latency "
        f"{stats.mean_latency_s * 1000:.0f} ms, {stats.dropped} dropped{f'; recorded {cfg.record}' if cfg.record and stats.frames else ''}",
        file=sys.stderr,
    )
    if stats.missing:  # as for stylizing the file: a partial success
        print(
            f"fastnst: warning: {cfg.webcam}: the file announces {stats.expected} frames but only {stats.decoded} could be decoded "
            f"(it is truncated or damaged){f'; {cfg.record} holds what was recorded' if cfg.record else ''}",
            file=sys.stderr,
        )
    return 1 if stats.missing else 0
