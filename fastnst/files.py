"""From the command line's INPUT... and --output to (source, destination) pairs.

Every check that can fail is done before the first image is processed, so a
long folder run never stops half way for a naming problem: missing inputs,
an output that would overwrite an input, an existing output (or symbolic
link) without --overwrite, a FIFO or device in an output's place, two inputs
mapped to one output, a suffix no writer takes (such inputs are written as
the kind's fallback format, e.g. .png). What depends on each image's pixels
(its size against the output format's limit) is checked after reading it
and before stylizing it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, Literal, NamedTuple

from PIL import Image
from tqdm import tqdm

from .atomic import check_output_free
from .errors import FastNSTError
from .images import (
    FRAMES_KEY,
    READ_SUFFIXES,
    check_output_size,
    check_output_suffix,
    fit_max,
    open_image,
    rgb_profile,
    save_image,
    stores_icc,
)
from .paths import check_not_inputs, check_writable, describe, glob_files, walk_files

__all__ = ["IMAGES", "MediaKind", "Skipped", "Source", "Stylized", "expand_inputs", "plan_outputs", "process_files"]

_GLOB_CHARS = set("*?[")

Source = tuple[Path, Path]  # (file, the root it was found under, for relative output names)


class Stylized(NamedTuple):
    """What a process made of one image: its RGB result and the alpha plane to write with it
    (None: opaque). The same three slots as the plain ``(key, RGB, alpha)`` tuples stylize_many yields."""

    key: Any
    rgb: Image.Image
    alpha: Image.Image | None = None


class Skipped(NamedTuple):
    """An image a process could not stylize (e.g. the Gatys loss diverged): reported and counted
    like an unreadable file, while the rest of the run goes on."""

    key: Any
    reason: str


# A process yields a Stylized or a Skipped per image (plain tuples are read too: see _outcome).
Outcome = Stylized | Skipped | tuple[Any, Any, Any]
ProcessFn = Callable[[Iterable[tuple[Any, Image.Image]]], Iterator[Outcome]]


class MediaKind(NamedTuple):
    """What a folder is searched for, how an output suffix is checked, and what replaces one that cannot be written."""

    name: str  # plural, for messages: "images", "videos"
    suffixes: tuple[str, ...]
    check_suffix: Callable[[Path], object]  # raises FastNSTError for a suffix it cannot write
    # Outputs keep the input's suffix when it can be written, else take this one (a.gif, a.avif, a.bak -> a.png);
    # None: such an input is refused up front.
    fallback: str | None = None


IMAGES = MediaKind("images", READ_SUFFIXES, check_output_suffix, ".png")


def _writable(kind: MediaKind, suffix: str) -> bool:
    try:
        kind.check_suffix(Path(f"x{suffix}"))
    except FastNSTError:
        return False
    return True


def _files_in(folder: Path, suffixes: tuple[str, ...]) -> list[Path]:
    return sorted(walk_files(folder, suffixes, every_name=True))


def expand_inputs(inputs: list[str], kind: MediaKind = IMAGES) -> list[Source]:
    """Files, folders (recursive) and glob patterns -> (file, root) pairs.

    An empty argument is refused: pathlib reads it as ".", which would
    stylize everything under the current folder.
    """
    if not inputs:
        raise FastNSTError(f"no input {kind.name} given")
    if any(os.fsdecode(arg) == "" for arg in inputs):
        raise FastNSTError(f"'': an empty INPUT path; name the {kind.name}, folders or patterns to use (\".\" for the current folder)")
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


def _is_file_output(output: Path, sources: list[Source], inputs: list[str], folder_asked: bool) -> bool:
    single_file = len(sources) == 1 and len(inputs) == 1 and Path(inputs[0]).is_file()
    return single_file and not folder_asked and not output.is_dir() and output.suffix != ""


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
    suffix (and no trailing slash); otherwise a folder that mirrors the
    inputs' sub-folders, where each output keeps its input's suffix if it
    can be written and else takes ``kind.fallback``. ``protect`` lists the
    run's other inputs as (path, what), e.g. the model file: no output may
    replace one, even with ``--overwrite``.
    """
    raw = _check_output_name(output, kind)
    sources = expand_inputs(inputs, kind)
    out = Path(raw)
    folder_asked = raw.endswith(("/", os.sep))  # "x.png/": a folder, as for cp and mv
    if _is_file_output(out, sources, inputs, folder_asked):
        kind.check_suffix(out)
        pairs = [(sources[0][0], out)]
    else:
        _check_folder_output(out, sources, inputs, kind, folder_asked)
        if suffix is not None:
            kind.check_suffix(Path(f"x{suffix}"))
        pairs = [(f, out / f.relative_to(root).with_suffix(suffix or _output_suffix(f, kind))) for f, root in sources]
    _check_pairs(pairs, overwrite)
    check_not_inputs(((dst, "--output") for _, dst in pairs), protect)
    for folder in sorted({dst.parent for _, dst in pairs}):
        check_writable(folder)
    return pairs


def _check_output_name(output: str | os.PathLike, kind: MediaKind) -> str:
    """The --output as typed; '' and '-' are refused (pathlib would read them as "." and a folder named -)."""
    raw = os.fsdecode(output)
    if raw == "":
        raise FastNSTError("--output '': an empty path; give a file name, or a folder for several inputs")
    if raw == "-":
        raise FastNSTError(f"--output -: fastnst does not write {kind.name} to standard output; give a file name (./- for a file named -)")
    return raw


def _check_folder_output(out: Path, sources: list[Source], inputs: list[str], kind: MediaKind, folder_asked: bool) -> None:
    """An output folder must be one: not a file, and not a new name that looks like one (out.png)."""
    if len(sources) > 1:
        why = "several inputs need"
    else:
        why = "a trailing / asks for" if folder_asked else f"{inputs[0]} (a folder or pattern) needs"
    if os.path.lexists(out):
        if not out.is_dir():
            what = describe(out)
            raise FastNSTError(f"{out}: {'exists and is not a folder' if what == 'a regular file' else what}; {why} an output folder")
        return
    ext = out.suffix.lower()
    if not folder_asked and ext and (ext in kind.suffixes or _writable(kind, ext)):
        raise FastNSTError(
            f"{out}: {why} an output folder, and {out.name} looks like a file name; give a folder (end it with / to use this name for one)"
        )


def _output_suffix(f: Path, kind: MediaKind) -> str:
    """The input's suffix (lower case) if it can be written, else the kind's fallback; else refused now, not after the work."""
    ext = f.suffix.lower()
    if _writable(kind, ext):
        return ext
    if kind.fallback is None:
        kind.check_suffix(f)  # raises, naming the suffixes that can be written
    return kind.fallback or ext


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
        check_output_free(dst, overwrite)


def _inode(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_dev, st.st_ino


def process_files(
    process: ProcessFn,
    pairs: list[tuple[Path, Path]],
    progress: bool = True,
    overwrite: bool = False,
    max_size: int | None | Literal[False] = False,
) -> int:
    """Read, process and atomically write each pair; returns how many failed.

    A file that cannot be read or stylized is reported and skipped; the
    rest still run. So is one whose result is too large for its output
    format, before any work is spent on it: ``max_size`` is the
    ``--max-size`` the process applies (None: it keeps the size). False
    means unknown: a guess from the input's size could refuse an image the
    process would shrink, so such a result is refused only by save_image,
    after the work. Each input's RGB colour profile is written with its result.
    """
    failed = 0
    profiles: dict[Any, bytes | None] = {}

    def items() -> Iterator[tuple[Any, Image.Image]]:
        nonlocal failed
        for src, dst in pairs:
            try:
                image = open_image(src)
                if max_size is not False:
                    check_output_size(dst, fit_max(image.size, max_size))
            except FastNSTError as e:
                failed += 1
                tqdm.write(f"warning: skipped {src}: {e}" if str(e).startswith(str(dst)) else f"warning: skipped {e}", file=sys.stderr)
                continue
            if image.info.get(FRAMES_KEY):
                tqdm.write(f"note: {src}: {image.info[FRAMES_KEY]} frames (an animation or pages); stylized the first", file=sys.stderr)
            profiles[src, dst] = _profile(src, dst, image)
            yield (src, dst), image

    bar = tqdm(total=len(pairs), desc="stylizing", unit="img", disable=not progress or len(pairs) < 2)
    with bar:
        for outcome in map(_outcome, process(items())):
            src, dst = outcome.key
            profile = profiles.pop((src, dst), None)
            if isinstance(outcome, Skipped):
                failed += 1
                tqdm.write(f"warning: skipped {src}: {outcome.reason}", file=sys.stderr)
            else:
                save_image(outcome.rgb, dst, outcome.alpha, replace=overwrite, icc_profile=profile)
            bar.update(1)
    return failed


def _outcome(item: Outcome) -> Stylized | Skipped:
    """A process's answer for one image as a Stylized or a Skipped; a plain tuple is read as before
    the types existed: (key, RGB, alpha), or (key, None, reason) for an image it could not stylize."""
    if isinstance(item, (Stylized, Skipped)):
        return item
    key, rgb, extra = item
    return Skipped(key, str(extra)) if rgb is None else Stylized(key, rgb, extra)


def _profile(src: Path, dst: Path, image: Image.Image) -> bytes | None:
    """The input's RGB colour profile, to write with its result; a note when the output format cannot hold it."""
    profile = rgb_profile(image)
    if profile is not None and not stores_icc(check_output_suffix(dst)):
        tqdm.write(
            f"note: {src}: {dst.suffix} files cannot store its ICC colour profile, so colours may shift; "
            ".png, .jpg, .webp and .tif keep it",
            file=sys.stderr,
        )
    return profile
