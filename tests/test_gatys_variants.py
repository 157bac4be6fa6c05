"""benchmarks/gatys_variants.py: the L-BFGS without host reads takes torch's iterates, step for step,
so a faster Gatys figure from it on the GPU is the same optimizer, not another one."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from fastnst.gatys import GatysOptimizer
from fastnst.images import pil_to_tensor

from .conftest import synthetic_photo
from .test_gatys import _config

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import gatys_variants as variants

N = 20


def _double_well(dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, object]:
    """A start in the wells' concave middle (the first pairs have negative curvature and are dropped)
    and a coupled double well, minimised in about 25 steps (after which the steps' pairs are too small: dropped too)."""
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(N, N, generator=gen, dtype=torch.float64) * 0.2
    x0 = torch.randn(N, generator=gen, dtype=torch.float64) * 0.1

    def f(x: torch.Tensor) -> torch.Tensor:
        x = x.double()
        return (((x**2 - 1) ** 2).sum() + ((a @ x) ** 2).sum()).to(dtype)

    return x0.to(dtype), f


def _iterates(
    kind: str, history: int, lr: float, steps: int, dtype: torch.dtype = torch.float64
) -> tuple[torch.Tensor, torch.optim.Optimizer]:
    x0, f = _double_well(dtype)
    x = x0.clone().requires_grad_(True)
    opt = variants.make_lbfgs(kind, [x], lr, history)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = f(x)
        loss.backward()
        return loss

    seen = []
    for _ in range(steps):
        opt.step(closure)
        seen.append(x.detach().double().clone())
    return torch.stack(seen), opt


@pytest.mark.parametrize("history, lr", [(3, 1.0), (5, 0.5), (50, 1.0)])
def test_iterates_are_torchs(history: int, lr: float) -> None:
    steps = 40
    ours, opt = _iterates("compact", history, lr, steps)
    theirs, _ = _iterates("torch", history, lr, steps)
    accepted = int(opt.state[opt.param_groups[0]["params"][0]]["count"])
    assert accepted < steps - 1, "the run dropped pairs (too little curvature)"
    assert history == 50 or accepted > history, "the run wrapped the history round"
    err = (ours - theirs).norm(dim=1) / theirs.norm(dim=1)
    assert float(err.max()) < 1e-10, err
    assert float((theirs[-1] - theirs[0]).norm()) > 1.0, "the iterates went somewhere"


def test_float32_iterates_are_torchs_within_rounding() -> None:
    ours, _ = _iterates("compact", 5, 1.0, 30, torch.float32)
    theirs, _ = _iterates("torch", 5, 1.0, 30, torch.float32)
    assert float(((ours - theirs).norm(dim=1) / theirs.norm(dim=1)).max()) < 1e-4


def test_no_value_is_read_back_from_the_device() -> None:
    """On the meta device a tensor has no values: any host read (``item``, ``float``, ``if t:``, a tensor as
    an op's scalar argument) raises. torch's L-BFGS reads 2m + 3 of them an iteration; ours none."""

    def run(make: type) -> None:
        x = torch.zeros(30, device="meta", requires_grad=True)
        opt = make([x])

        def closure() -> torch.Tensor:
            opt.zero_grad()
            loss = ((x - 1) ** 2).sum()
            loss.backward()
            return loss

        for _ in range(6):  # past the history's length: the ring wraps
            opt.step(closure)

    run(lambda p: variants.CompactLBFGS(p, lr=1.0, history_size=4))
    with pytest.raises(RuntimeError, match="meta"):
        run(lambda p: torch.optim.LBFGS(p, lr=1.0, max_iter=1, history_size=4, tolerance_grad=0.0, tolerance_change=0.0))


def test_one_parameter_tensor_only() -> None:
    with pytest.raises(ValueError, match="one parameter"):
        variants.CompactLBFGS([torch.zeros(2, requires_grad=True), torch.zeros(2, requires_grad=True)])


def test_gatys_with_either_lbfgs_gives_the_same_picture(style_file: Path, vgg_file: Path) -> None:
    photo = pil_to_tensor(synthetic_photo(24, 20, seed=5))
    cfg = _config(style_file, vgg_file, amp=False, iterations=(12,))
    plain = variants.gatys_optimizer(cfg, "torch")
    compact = variants.gatys_optimizer(cfg, "compact")
    assert type(plain) is GatysOptimizer and isinstance(compact, GatysOptimizer) and type(compact) is not GatysOptimizer
    ours, theirs = compact.run(photo), plain.run(photo)
    assert ours.passes[0].history[-1] < 0.5 * ours.passes[0].history[0], "the compact L-BFGS optimised"
    assert ours.losses["total"] == pytest.approx(theirs.losses["total"], rel=1e-3)
    assert float((ours.image - theirs.image).abs().max()) < 1e-3


def test_gatys_keeps_its_first_step_rule_with_the_compact_lbfgs(style_file: Path, vgg_file: Path) -> None:
    """fastnst sizes L-BFGS's first step in pixels (``_prime_first_step``), whichever L-BFGS runs."""
    from fastnst.gatys import FIRST_STEP

    photo = pil_to_tensor(synthetic_photo(24, 20, seed=7)) * 0.5 + 0.25
    seen: list[torch.Tensor] = []
    cfg = _config(style_file, vgg_file, iterations=(1,), save_every=1)
    variants.gatys_optimizer(cfg, "compact").run(photo, on_snapshot=lambda it, x: seen.append(x.clone()))
    assert float((seen[0] - photo).abs().max()) == pytest.approx(FIRST_STEP, rel=1e-3)


def test_unknown_lbfgs_is_refused(style_file: Path, vgg_file: Path) -> None:
    with pytest.raises(ValueError, match="unknown L-BFGS"):
        variants.gatys_optimizer(_config(style_file, vgg_file), "scipy")


READS = ("item", "tolist", "numpy", "__float__", "__int__", "__bool__", "__index__")


def _count_reads(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Counts the Python-level reads of a tensor's values (each a device-to-host wait on a GPU)."""
    counts = {"n": 0}
    for name in READS:
        real = getattr(torch.Tensor, name)

        def counted(self: torch.Tensor, *args: object, _real=real, **kwargs: object) -> object:
            counts["n"] += 1
            return _real(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)
    return counts


def test_a_gatys_iteration_with_the_compact_lbfgs_reads_the_device_once(
    style_file: Path, vgg_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Per iteration: the loss terms, in one transfer, after the backward pass is queued. torch's L-BFGS adds
    its loss and three tests (and 2m reads inside C++, its 0-d tensors as ``alpha``, which this count cannot see)."""
    photo = pil_to_tensor(synthetic_photo(24, 20, seed=5))
    reads = {}
    for kind in ("compact", "torch"):
        for iterations in (4, 9):
            gatys = variants.gatys_optimizer(_config(style_file, vgg_file, amp=False, iterations=(iterations,)), kind)
            counts = _count_reads(monkeypatch)
            gatys.run(photo)
            monkeypatch.undo()
            reads[kind, iterations] = counts["n"]
    assert reads["compact", 9] - reads["compact", 4] == 5, reads
    assert reads["torch", 9] - reads["torch", 4] >= 5 * 4, reads


def test_no_move_when_the_direction_does_not_descend() -> None:
    """torch breaks off (no move) when g.d > 0; so must the compact one, without a branch on the host.
    Forced here: the start's pair has negative curvature (dropped), and a negative H0 turns -H g uphill."""
    x0, f = _double_well()
    x = x0.clone().requires_grad_(True)
    opt = variants.CompactLBFGS([x], lr=1.0, history_size=5)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = f(x)
        loss.backward()
        return loss

    opt.step(closure)
    opt.state[x]["gamma"] = torch.tensor(-1.0, dtype=torch.float64)
    before = x.detach().clone()
    opt.step(closure)
    assert int(opt.state[x]["count"]) == 0, "the start's pair was dropped: H is gamma I"
    assert torch.equal(x.detach(), before)


def test_sync_check_needs_cuda_to_tell() -> None:
    assert variants.sync_check("compact", torch.device("cpu")) == {"synchronises": None, "steps": 6}
    with pytest.raises(ValueError, match="unknown L-BFGS"):
        variants.sync_check("scipy", torch.device("cpu"))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU")
def test_on_a_gpu_only_torchs_lbfgs_synchronises() -> None:
    device = torch.device("cuda")
    assert variants.sync_check("compact", device)["synchronises"] is False
    assert variants.sync_check("torch", device)["synchronises"] is True
