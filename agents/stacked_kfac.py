"""K-FAC for stacked seeds: the seed (and twin-critic member) as a batch dimension of the
Kronecker factors, of their eigenbases or inverses, and of the KL trust region.

suite/optimizers/kfac.py preconditions the ``nn.Linear`` modules of one model; its statistics,
damping and inner updates are per layer, so a stack of S seeds is S independent K-FACs once
every per-layer quantity carries a batch dimension (S, members): the factors
A = E[a a^T] (inputs with a ones column for the bias) and G = n E[g g^T] (output gradients of a
batch-mean loss), their EMA, the eigendecompositions (``damping_mode: eigen``, ACKTR's damping of
the eigenvalue products) or pi-damped Cholesky inverses (``pi``, Martens & Grosse 2015, §6.3),
the solve, and the KL clip (Wu et al. 2017, §3.1), which sums g.v over each seed's parameters
only. The inner update (ACKTR momentum SGD, SGD, Adam) is elementwise and runs on the stacked
tensors as is (``kfac._inner_update``).

The hyperparameters are whatever the lone class (the ``kfac`` / ``kfac_adam`` table rows)
resolves from the spec: a throwaway lone optimizer over a dummy layer is built and its param
group read, so the table's defaults and fixed settings (``inner``, ``damping_mode``) are the
lone run's. tests/test_rl_stacked.py checks each seed against the lone optimizer on nn.Linear
modules. A seed whose statistics are not finite (a diverging seed) is left with its previous
eigenbases or inverses, or identity ones, and does not affect the others.
"""

from __future__ import annotations

import contextlib
import math
from typing import Any

import torch
from torch import nn

from suite.optimizers import (
    OPTIMIZERS,
    SCHEDULES,
    OptimizerSpec,
    RoleOptimizer,
    check_stackable,
    optimizer_class,
    validate_spec,
)
from suite.optimizers.kfac import KFAC, _inner_update


def is_kfac(spec: OptimizerSpec) -> bool:
    if spec.optimizer not in OPTIMIZERS:
        return False
    cls = optimizer_class(spec.optimizer)
    return isinstance(cls, type) and issubclass(cls, KFAC)


def lone_group(spec: OptimizerSpec) -> dict[str, Any]:
    """The hyperparameters the lone K-FAC class resolves from ``spec`` (its param group)."""
    dummy = nn.Linear(1, 1)
    optimizer = optimizer_class(spec.optimizer)(
        list(dummy.parameters()), lr=spec.lr, modules=[dummy], **spec.kwargs
    )
    optimizer.remove_hooks()
    return {k: v for k, v in optimizer.param_groups[0].items() if k != "params"}


class Capture:
    """Pairs (layer input, output gradient) of a stacked MLP's forwards made inside
    ``capturing()``; the forwards outside it (targets, acting, the actor loss through the
    critic) contribute nothing, as the lone K-FAC's hooks see only its own module's forwards
    in training mode that are backpropagated before its ``step``."""

    def __init__(self, layers: int):
        self.enabled = False  # set when a K-FAC optimizer trains the MLP
        self.active = False
        self.pairs: list[list[tuple[torch.Tensor, torch.Tensor]]] = [[] for _ in range(layers)]

    @contextlib.contextmanager
    def capturing(self):
        self.active = True
        try:
            yield
        finally:
            self.active = False

    def record(self, index: int, inputs: torch.Tensor, output: torch.Tensor) -> None:
        """Called by the MLP's forward for layer ``index``: inputs and output (SM, B, *)."""
        if not (self.enabled and self.active and torch.is_grad_enabled()):
            return
        if not output.requires_grad:
            return
        activation = inputs.detach()

        def pair(grad: torch.Tensor) -> None:
            self.pairs[index].append((activation, grad.detach()))

        output.register_hook(pair)

    def clear(self) -> None:
        for pairs in self.pairs:
            pairs.clear()


class StackedKFAC(torch.optim.Optimizer):
    """K-FAC over stacked MLP layers (weights (S, M, in, out), biases (S, M, 1, out)).

    :param params: the role's parameters: every layer's weight and bias, in the MLP's order.
    :param mlps: the StackedMLPs owning them, each with a ``capture`` (a Capture).
    :param group: the lone class's hyperparameters (``lone_group``).
    """

    def __init__(self, params, mlps, seeds: int, group: dict[str, Any]):
        super().__init__(list(params), dict(group))
        self.mlps, self.seeds = mlps, seeds

    def zero_grad(self, set_to_none: bool = True) -> None:
        super().zero_grad(set_to_none=set_to_none)
        for mlp in self.mlps:
            mlp.capture.clear()

    @torch.no_grad()
    def step(self, closure=None):
        group = self.param_groups[0]
        raw: dict[int, torch.Tensor] = {}
        for mlp in self.mlps:
            for index, pairs in enumerate(mlp.capture.pairs):
                weight, bias = mlp.weights[index], mlp.biases[index]
                if pairs and weight.grad is not None:
                    if group["kl_clip"] is not None:
                        raw[id(weight)] = weight.grad.clone()
                        raw[id(bias)] = bias.grad.clone()
                    self._precondition(weight, bias, pairs, group)
            mlp.capture.clear()
        if group["kl_clip"] is not None:
            self._kl_clip(group, raw)
        for param in group["params"]:
            if param.grad is not None:
                _inner_update(param, self.state[param], group)

    def _precondition(self, weight, bias, pairs, group) -> None:
        state = self.state[weight]
        factor_a, factor_g = _factors(pairs, weight.dtype)
        shape = weight.shape[:2]  # (S, M)
        factor_a = factor_a.reshape(*shape, *factor_a.shape[1:])
        factor_g = factor_g.reshape(*shape, *factor_g.shape[1:])
        for key, value in (("kfac_A", factor_a), ("kfac_G", factor_g)):
            if key not in state:
                state[key] = value.clone()
            else:
                state[key].mul_(group["stat_decay"]).add_(value, alpha=1.0 - group["stat_decay"])
        state["kfac_step"] = state.get("kfac_step", 0) + 1
        due = (state["kfac_step"] - 1) % group["update_freq"] == 0
        eigen = group["damping_mode"] == "eigen"
        if due:
            _eigenbases(state) if eigen else _inverses(state, group["damping"])
        # (S, M, out, in + 1): [grad_W, grad_b] as the lone layer's (out, in) matrix.
        grad = torch.cat([weight.grad, bias.grad], dim=2).transpose(2, 3)
        if eigen:
            q_a, q_g = state["kfac_QA"], state["kfac_QG"]
            projected = q_g.transpose(-1, -2) @ grad @ q_a
            scale = state["kfac_sG"][..., :, None] * state["kfac_sA"][..., None, :]
            solved = q_g @ (projected / (scale + group["damping"])) @ q_a.transpose(-1, -2)
        else:
            solved = state["kfac_G_inv"] @ grad @ state["kfac_A_inv"]
        solved = solved.transpose(2, 3)
        weight.grad.copy_(solved[:, :, :-1])
        bias.grad.copy_(solved[:, :, -1:])

    def _kl_clip(self, group, raw: dict[int, torch.Tensor]) -> None:
        """kfac._kl_clip_ per seed: scale each seed's v by min(1, sqrt(2 delta / (lr^2 g.v)))."""
        grads = [p.grad for p in group["params"] if p.grad is not None]
        if not grads:
            return
        dot = sum(
            (p.grad * raw.get(id(p), p.grad)).reshape(self.seeds, -1).sum(1)
            for p in group["params"]
            if p.grad is not None
        )
        quadratic = dot * group["lr"] ** 2
        bound = torch.sqrt(
            2.0 * group["kl_clip"] / quadratic.clamp_min(torch.finfo(dot.dtype).tiny)
        )
        scale = torch.where(quadratic > 0, bound.clamp_max(1.0), torch.ones_like(bound))
        for v in grads:
            v.mul_(scale.reshape(-1, *[1] * (v.dim() - 1)))


def _factors(pairs, dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """kfac._kronecker_factors for (SM, B, *) pairs pooled over forwards: A = mean a a^T with
    a ones column, G = n sum g g^T with n the pooled sample count."""
    a = torch.cat([p[0] for p in pairs], dim=1).to(dtype)
    g = torch.cat([p[1] for p in pairs], dim=1).to(dtype)
    a = torch.cat([a, a.new_ones(*a.shape[:2], 1)], dim=2)
    samples = a.shape[1]
    return a.transpose(1, 2) @ a / samples, (g.transpose(1, 2) @ g) * samples


def _finite(matrices: torch.Tensor) -> torch.Tensor:
    return torch.isfinite(matrices).flatten(-2).all(-1)


def _eigenbases(state) -> None:
    """kfac._eigen on every (seed, member) factor: clamped eigenvalues and eigenvectors in
    float64; a factor that is not finite keeps its previous eigenbasis (identity at first)."""
    for name in ("A", "G"):
        factor = state[f"kfac_{name}"].double()
        ok = _finite(factor)
        eye = torch.eye(factor.shape[-1], dtype=factor.dtype, device=factor.device)
        values, vectors = torch.linalg.eigh(torch.where(ok[..., None, None], factor, eye))
        values = values.clamp_min(0.0).to(state[f"kfac_{name}"].dtype)
        # Row-major, as a checkpoint reloads them: eigh returns column-major vectors, and the
        # matmuls round differently on the two layouts (resume must continue bit for bit).
        vectors = vectors.to(values.dtype).contiguous()
        if f"kfac_Q{name}" in state:
            values = torch.where(ok[..., None], values, state[f"kfac_s{name}"])
            vectors = torch.where(ok[..., None, None], vectors, state[f"kfac_Q{name}"])
        state[f"kfac_s{name}"], state[f"kfac_Q{name}"] = values, vectors


def _inverses(state, damping: float) -> None:
    """kfac._pi_damping and kfac._damped_inverse on every (seed, member) pair of factors."""
    factor_a, factor_g = state["kfac_A"], state["kfac_G"]
    mean_a = torch.diagonal(factor_a, dim1=-2, dim2=-1).sum(-1).double() / factor_a.shape[-1]
    mean_g = torch.diagonal(factor_g, dim1=-2, dim2=-1).sum(-1).double() / factor_g.shape[-1]
    pi = torch.sqrt(mean_a / mean_g)
    usable = (mean_a > 0) & (mean_g > 0) & torch.isfinite(pi) & (pi != 0)
    pi = torch.where(usable, pi, torch.ones_like(pi))
    root = math.sqrt(damping)
    for name, factor, damp in (("A", factor_a, pi * root), ("G", factor_g, root / pi)):
        m64 = factor.double()
        eye = torch.eye(m64.shape[-1], dtype=m64.dtype, device=m64.device)
        chol, info = torch.linalg.cholesky_ex(m64 + damp[..., None, None] * eye)
        ok = (info == 0) & _finite(m64)
        chol = torch.where(ok[..., None, None], chol, eye)
        inverse = torch.cholesky_inverse(chol).to(factor.dtype)
        key = f"kfac_{name}_inv"
        if key in state:
            inverse = torch.where(ok[..., None, None], inverse, state[key])
        state[key] = inverse


def build_kfac_role(role: str, spec: OptimizerSpec, mlps, seeds: int) -> RoleOptimizer:
    """A RoleOptimizer (schedule included) whose optimizer is a StackedKFAC over ``mlps``."""
    validate_spec(spec)
    if spec.lookahead is not None:
        raise ValueError(f"{role}: Lookahead around K-FAC is not stacked; train seeds one by one")
    params = [p for mlp in mlps for p in mlp.parameters()]
    optimizer = StackedKFAC(params, mlps, seeds, lone_group(spec))
    scheduler = None
    if spec.schedule is not None:
        scheduler = SCHEDULES[spec.schedule.name](optimizer, **spec.schedule.kwargs)
    return RoleOptimizer(role, spec, optimizer, scheduler, params)


def check_stackable_rl(role: str, spec: OptimizerSpec) -> None:
    """suite.optimizers.check_stackable, with the K-FAC rows stackable too (batched here)."""
    if is_kfac(spec):
        if spec.lookahead is not None:
            raise ValueError(f"{role}: Lookahead around K-FAC cannot train stacked seeds")
        return
    check_stackable(role, spec)


def seed_state(state: dict, i: int) -> dict:
    """Seed i's part of a StackedKFAC RoleOptimizer state: tensors sliced along the seed
    dimension, counters and hyperparameters copied."""

    def cut(value):
        if torch.is_tensor(value) and value.dim() > 0:
            return value[i].clone()
        return value

    optimizer = state["optimizer"]
    return {
        **state,
        "optimizer": {
            "state": {k: {n: cut(v) for n, v in e.items()} for k, e in optimizer["state"].items()},
            "param_groups": optimizer["param_groups"],
        },
    }


def joined_state(states: list[dict]) -> dict:
    """``seed_state``'s inverse over the seeds of a stack."""
    first = states[0]["optimizer"]

    def join(name, values):
        if torch.is_tensor(values[0]) and name not in ("step", "kfac_step"):
            return torch.stack(values)
        return values[0]

    joined = {
        k: {n: join(n, [s["optimizer"]["state"][k][n] for s in states]) for n in e}
        for k, e in first["state"].items()
    }
    return {**states[0], "optimizer": {"state": joined, "param_groups": first["param_groups"]}}
