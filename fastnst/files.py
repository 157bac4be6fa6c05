"""From the command line's INPUT... and --output to (source, destination) pairs.

Every check that can fail is done before the first image is processed, so a
long folder run never stops half way for a naming problem: missing inputs,
an output that would overwrite an input, an existing output without
--overwrite, two inputs mapped to one output.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

from PIL import Image
from tqdm import tqdm

from .errors import FastNSTError
from .images import FRAMES_KEY, READ_SUFFIXES, check_output_suffix, open_image, save_image
from .paths import check_not_inputs, check_writable, describe, glob_files, walk_files

__all__ = ["IMAGES", "MediaKind", "Source", "expand_inputs", "plan_outputs", "process_files"]

# Outputs keep the input's format unless Pillow cannot write it well.
_OUTPUT_SUFFIX = {".gif": ".png"}
_GLOB_CHARS = set("*?[")

Source = tuple[Path, Path]  # (file, the root it was found under, for relative output names)

# A process yields (key, RGB, alpha or None) per image, or (key, None, reason)
# for an image it could not stylize (reported and counted like an unreadable file).
ProcessFn = Callable[[Iterable[tuple[Any, Image.Image]]], Iterator[tuple[Any, "Image.Image | None", "Image.Image | str | None"]]]


class MediaKind(NamedTuple):
    """What a folder is searched for, and how an output suffix is checked."""

    name: str  # plural, for messages: "images", "videos"
    suffixes: tuple[str, ...]
    check_suffix: Callable[[Path], object]  # raises FastNSTError for a suffix it cannot write


IMAGES = MediaKind("images", READ_SUFFIXES, check_output_suffix)


def _files_in(folder: Path, suffixes: tuple[str, ...]) -> list[Path]:
    return sorted(walk_files(folder, suffixes))


def expand_inputs(inputs: list[str], kind: MediaKind = IMAGES) -> list[Source]:
    """Files, folders (recursive) and glob patterns -> (file, root) pairs."""
    if not inputs:
        raise FastNSTError(f"no input {kind.name} given")
    found: list[Source] = []
    for arg in inputs:
        p = Path(arg)
        if p.is_dir():
            files = _files_in(p, kind.suffixes)
            if not files:
                raise FastNSTError(f"{p}: no {kind.name} in this folder ({', '.join(kind.suffixes)})")
            found += [(f, p) for f in files]
        elif p.is_file():
            found.append((p, p.parent))
        elif _GLOB_CHARS & set(arg) and not os.path.lexists(p):
            matches = glob_files(arg)
            if not matches:
                raise FastNSTError(f"{arg}: the pattern matches no files")
            found += [(m, m.parent) for m in matches]
        else:
            what = describe(p)
            raise FastNSTError(f"{arg}: {'no such file or folder' if what == 'no such file' else what}")
    return found


def _is_file_output(output: Path, sources: list[Source], inputs: list[str]) -> bool:
    single_file = len(sources) == 1 and len(inputs) == 1 and Path(inputs[0]).is_file()
    return single_file and not output.is_dir() and output.suffix != ""


def plan_outputs(
    inputs: list[str],
    output: str | os.PathLike,
    overwrite: bool = False,
    suffix: str | None = None,
    kind: MediaKind = IMAGES,
    protect: Iterable[tuple[str | os.PathLike | None, str]] = (),
) -> list[tuple[Path, Path]]:
    """(source, destination) pairs; raises before any work if a pair is unsafe.

    ``--output`` is a file when there is exactly one input file and it has a
    suffix; otherwise a folder that mirrors the inputs' sub-folders.
    ``protect`` lists the run's other inputs as (path, what), e.g. the model
    file: no output may replace one, even with ``--overwrite``.
    """
    sources = expand_inputs(inputs, kind)
    out = Path(output)
    if _is_file_output(out, sources, inputs):
        kind.check_suffix(out)
        pairs = [(sources[0][0], out)]
    else:
        if out.exists() and not out.is_dir():
            raise FastNSTError(f"{out}: exists and is not a folder; with several inputs --output must be a folder")
        pairs = []
        for f, root in sources:
            ext = suffix or _OUTPUT_SUFFIX.get(f.suffix.lower(), f.suffix.lower())
            pairs.append((f, out / f.relative_to(root).with_suffix(ext)))
    _check_pairs(pairs, overwrite)
    check_not_inputs(((dst, "--output") for _, dst in pairs), protect)
    for folder in sorted({dst.parent for _, dst in pairs}):
        check_writable(folder)
    return pairs


def _check_pairs(pairs: list[tuple[Path, Path]], overwrite: bool) -> None:
    inputs = {os.path.realpath(p) for p, _ in pairs}
    inodes = {_inode(p) for p, _ in pairs}  # hard links to an input have another name
    seen: dict[str, Path] = {}
    for src, dst in pairs:
        rd = os.path.realpath(dst)  # never raises, even on a link loop
        if rd in inputs or (dst.exists() and _inode(dst) in inodes):
            raise FastNSTError(f"{dst}: this output would overwrite an input; choose another --output")
        if rd in seen:
            raise FastNSTError(f"{seen[rd]} and {src} would both be written to {dst}; stylize them separately")
        seen[rd] = src
        if dst.exists() and not overwrite:
            raise FastNSTError(f"{dst}: already exists; pass --overwrite to replace it")


def _inode(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_dev, st.st_ino


def process_files(
    process: ProcessFn, pairs: list[tuple[Path, Path]], progress: bool = True, desc: str = "stylizing", overwrite: bool = False
) -> int:
    """Read, process and atomically write each pair; returns how many failed.

    A file that cannot be read or stylized is reported and skipped; the
    rest still run.
    """
    failed = 0

    def items() -> Iterator[tuple[Any, Image.Image]]:
        nonlocal failed
        for src, dst in pairs:
            try:
                image = open_image(src)
            except FastNSTError as e:
                failed += 1
                tqdm.write(f"warning: skipped {e}", file=sys.stderr)
                continue
            if image.info.get(FRAMES_KEY):
                tqdm.write(f"note: {src}: {image.info[FRAMES_KEY]} frames (an animation or pages); stylized the first", file=sys.stderr)
            yield (src, dst), image

    bar = tqdm(total=len(pairs), desc=desc, unit="img", disable=not progress or len(pairs) < 2)
    with bar:
        for (src, dst), rgb, alpha in process(items()):
            if rgb is None:
                failed += 1
                tqdm.write(f"warning: skipped {src}: {alpha}", file=sys.stderr)
            else:
                save_image(rgb, dst, alpha, replace=overwrite)
            bar.update(1)
    return failed
