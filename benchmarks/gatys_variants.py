"""An L-BFGS without host-device synchronisation, for the GPU run's Gatys figures (issue 13).

The first GPU run measured 10.7 s for 500 L-BFGS iterations at 512 px (target
5 s): 21 ms an iteration, where VGG19's forward and backward pass at 512 px
(about 0.4 TFLOP) should take a few ms on an H200. ``torch.optim.LBFGS`` stops
the host 2m + 4 times an iteration (m = the pairs in its history, 50 in
fastnst) to read a number back from the device: ``q.add_(v, alpha=al[i])``
with a 0-d tensor ``al[i]`` reads it, twice per pair, and ``float(loss)``, its
gradient test, ``ys > 1e-10`` and ``gtd > -tolerance`` once each. Each read drains the
device's queue, which then idles while the host launches the next small kernel.

:class:`CompactLBFGS` computes the same iteration without any read: the
compact representation of the L-BFGS matrix (Byrd, Nocedal & Schnabel 1994,
"Representations of quasi-Newton matrices and their use in limited memory
methods", eq. 3.1 with H0 = gamma I). With the m pairs as the rows of S and
Y, R the upper triangle of S Y^T (in the order the pairs came) and D its
diagonal,

    H g = gamma (g - Y^T u) + S^T p,   u = R^-1 S g,   p = R^-T ((D + gamma Y Y^T) u - gamma Y g),

a handful of kernels whatever m is: three passes over the history (S g and Y g
together; S^T p and Y^T u together; the new pair against all) and two m x m
triangular solves. The pairs sit in a fixed ring (a pair with too little
curvature is dropped by a masked write, not a branch), so the shapes never
change: a later step could capture the whole iteration in a CUDA graph.

It is the Gatys optimizer's iteration only: one iteration per ``step``, a
fixed step (no line search) and no stopping tests (the caller decides when to
stop, as fastnst's Gatys loop does: it passes zero tolerances to torch's; one
difference follows: at a gradient of exactly zero torch's returns without
touching its state, this one takes its zero step). The tests check its
iterates against ``torch.optim.LBFGS`` on the CPU. It is not the product's
optimizer until a GPU has measured it faster.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from fastnst.config import GatysConfig
from fastnst.gatys import GatysOptimizer

LBFGS_KINDS = ("torch", "compact")
MIN_CURVATURE = 1e-10  # torch's: a pair with y.s at or below it is dropped


class CompactLBFGS(torch.optim.Optimizer):
    """``torch.optim.LBFGS(params, lr, max_iter=1, history_size, tolerance_grad=0, tolerance_change=0)``'s
    iteration (see the module's docstring), for one parameter tensor, with no host-device synchronisation.

    The history is kept in the parameter's dtype (2 x ``history_size`` image-sized rows, as torch's
    lists); the m x m algebra in float64, where the triangular solves are well within precision.
    """

    def __init__(self, params: Any, lr: float = 1.0, history_size: int = 100) -> None:
        super().__init__(params, {"lr": lr, "history_size": history_size})
        if len(self.param_groups) != 1 or len(self.param_groups[0]["params"]) != 1:
            raise ValueError("CompactLBFGS optimises exactly one parameter tensor")

    def _init_state(self, x: torch.Tensor, m: int) -> dict[str, Any]:
        dev, n = x.device, x.numel()
        f64 = {"device": dev, "dtype": torch.float64}
        return {
            "pairs": torch.zeros(2, m, n, device=dev, dtype=x.dtype),  # [0]: steps s, [1]: gradient changes y
            "sy": torch.zeros(m, m, **f64),  # sy[i, j] = s_i . y_j (slot order)
            "yy": torch.zeros(m, m, **f64),
            "age": torch.full((m,), -1, device=dev, dtype=torch.long),  # -1: never filled
            "count": torch.zeros((), device=dev, dtype=torch.long),  # pairs accepted so far
            "gamma": torch.ones((), **f64),  # H0 = gamma I, from the newest pair
        }

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor]) -> torch.Tensor:  # type: ignore[override]
        """One iteration: evaluate (``closure`` sets the gradient), update the history, move by lr along -H g."""
        group = self.param_groups[0]
        x = group["params"][0]
        with torch.enable_grad():
            loss = closure()
        g = x.grad.reshape(-1)
        state = self.state[x]
        if state:
            self._remember(state, state["s"], g - state["prev_grad"])
        else:
            state.update(self._init_state(x, group["history_size"]))
        d = -self._times_inverse_hessian(state, g)
        t = (g.dot(d) <= 0).to(d.dtype) * group["lr"]  # torch breaks off (no move) when d is not a descent direction
        if "prev_grad" not in state:  # torch's first step: min(1, 1/|g|_1) * lr
            t = t * torch.clamp(1.0 / g.abs().sum(), max=1.0)
        state["s"] = d * t  # not "step": Optimizer.load_state_dict treats that key as a step count
        state["prev_grad"] = g.clone()
        x.add_(state["s"].view_as(x))
        return loss

    @staticmethod
    def _remember(state: dict[str, Any], s: torch.Tensor, y: torch.Tensor) -> None:
        """Put (s, y) in place of the oldest pair when y.s > MIN_CURVATURE; otherwise leave the history as it was."""
        pairs, age = state["pairs"], state["age"]
        ys = y.dot(s).double()
        ok = ys > MIN_CURVATURE
        slot = torch.argmin(age).view(1)  # a never-filled slot (-1) or the oldest pair
        new = torch.stack([s, y])[:, None]  # (2, 1, n)
        pairs.index_copy_(1, slot, torch.where(ok, new, pairs.index_select(1, slot)))
        age.index_copy_(0, slot, torch.where(ok, state["count"], age.index_select(0, slot)))
        state["count"] += ok.long()
        s_new, y_new = pairs.index_select(1, slot)[:, 0]  # what the slot holds now
        dots = (pairs.view(-1, pairs.shape[-1]) @ torch.stack([s_new, y_new], 1)).double()  # (2m, 2)
        m = age.shape[0]
        sy, yy = state["sy"], state["yy"]
        sy.index_copy_(0, slot, dots[m:, 0][None])  # s_new . y_j
        sy.index_copy_(1, slot, dots[:m, 1][:, None])  # s_i . y_new
        yy.index_copy_(0, slot, dots[m:, 1][None])
        yy.index_copy_(1, slot, dots[m:, 1][:, None])
        state["gamma"] = torch.where(ok, ys / y.dot(y).double().clamp_min(1e-300), state["gamma"])

    @staticmethod
    def _times_inverse_hessian(state: dict[str, Any], g: torch.Tensor) -> torch.Tensor:
        """H g by the compact representation; slots never filled have zero rows and drop out
        (R gets a 1 on their diagonal, so it stays invertible)."""
        pairs, age, gamma = state["pairs"], state["age"], state["gamma"]
        m = age.shape[0]
        order = torch.argsort(age, stable=True)  # slots oldest first; never-filled ones first of all, inert
        ab = (pairs.view(2 * m, -1) @ g).double()
        a, b = ab[:m][order], ab[m:][order]
        sy = state["sy"][order][:, order]
        filled = (age[order] >= 0).double()
        r = torch.triu(sy) + torch.diag(1.0 - filled)
        u = torch.linalg.solve_triangular(r, a[:, None], upper=True)[:, 0]
        v = torch.diagonal(sy) * u + gamma * (state["yy"][order][:, order] @ u) - gamma * b
        p = torch.linalg.solve_triangular(r.T, v[:, None], upper=False)[:, 0]
        coef = torch.empty(2 * m, device=g.device, dtype=torch.float64)
        coef[:m][order] = p
        coef[m:][order] = -gamma * u
        return g * gamma.to(g.dtype) + coef.to(g.dtype) @ pairs.view(2 * m, -1)


def make_lbfgs(kind: str, params: Any, lr: float, history_size: int) -> torch.optim.Optimizer:
    """The L-BFGS named ``kind`` (one of LBFGS_KINDS) as fastnst's Gatys loop configures it."""
    if kind == "torch":
        return torch.optim.LBFGS(params, lr=lr, max_iter=1, history_size=history_size, tolerance_grad=0.0, tolerance_change=0.0)
    if kind == "compact":
        return CompactLBFGS(params, lr=lr, history_size=history_size)
    raise ValueError(f"unknown L-BFGS {kind!r}: one of {', '.join(LBFGS_KINDS)}")


def sync_check(kind: str, device: torch.device, steps: int = 6, history_size: int = 4) -> dict[str, Any]:
    """Whether ``steps`` steps of the L-BFGS named ``kind`` (the history wrapping round) synchronise the host
    with the device, as PyTorch's CUDA sync debug mode sees it, on a quadratic whose loss and gradient need
    no read. ``synchronises``: None off CUDA (only a CUDA device can tell); else ``first`` names the first one."""
    x = torch.zeros(100_000, device=device, requires_grad=True)
    target = torch.linspace(-1.0, 1.0, x.numel(), device=device)
    opt = make_lbfgs(kind, [x], 1.0, history_size)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = ((x - target) ** 2 * torch.linspace(1.0, 3.0, x.numel(), device=device)).sum()
        loss.backward()
        return loss

    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.synchronize(device)
        torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(steps):
            opt.step(closure)
    except RuntimeError as e:
        if not cuda:
            raise
        return {"synchronises": True, "steps": steps, "first": str(e).splitlines()[0][:200]}
    finally:
        if cuda:
            torch.cuda.set_sync_debug_mode("default")
    return {"synchronises": False if cuda else None, "steps": steps}


class _CompactGatys(GatysOptimizer):
    """fastnst's Gatys optimizer with :class:`CompactLBFGS` in place of torch's L-BFGS; all else unchanged."""

    def _make_optimizer(self, x: torch.Tensor) -> torch.optim.Optimizer:
        opt = super()._make_optimizer(x)  # its learning rate and history length, as fastnst sets them
        if not isinstance(opt, torch.optim.LBFGS):
            return opt
        group = opt.param_groups[0]
        return make_lbfgs("compact", [x], group["lr"], group["history_size"])


def lbfgs_label(kind: str) -> str:
    """The L-BFGS's name in a figure's name: ``lbfgs`` for torch's (the rows of earlier runs), ``compact-lbfgs``."""
    return "lbfgs" if kind == "torch" else f"{kind}-lbfgs"


def gatys_optimizer(cfg: GatysConfig, lbfgs: str = "torch") -> GatysOptimizer:
    """The Gatys optimizer for ``cfg`` with the L-BFGS named by ``lbfgs`` (one of LBFGS_KINDS)."""
    if lbfgs not in LBFGS_KINDS:
        raise ValueError(f"unknown L-BFGS {lbfgs!r}: one of {', '.join(LBFGS_KINDS)}")
    return GatysOptimizer(cfg) if lbfgs == "torch" else _CompactGatys(cfg)
