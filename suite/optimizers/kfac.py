"""K-FAC: Kronecker-factored approximate curvature (see the class docstring for sources)."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from suite.optimizers.extra import check_settings

Closure = Callable[[], float | Tensor] | None
ParamsT = Iterable[Tensor] | Iterable[dict[str, Any]]

INNER_UPDATES = ("sgd", "adam", "acktr")
DAMPING_MODES = ("pi", "eigen")


# --------------------------------------------------------------------------------------------
# K-FAC
# --------------------------------------------------------------------------------------------


@dataclass
class _Layer:
    """One preconditioned module and the (activation, output-gradient) pairs it collected."""

    module: nn.Linear | nn.Conv2d
    has_bias: bool
    pairs: list[tuple[Tensor, Tensor]] = field(default_factory=list)
    handle: RemovableHandle | None = None


def _as_module_list(modules: nn.Module | Iterable[nn.Module]) -> list[nn.Module]:
    if isinstance(modules, nn.Module):
        return [modules]
    return list(modules)


def _unsupported_reason(module: nn.Module) -> str | None:
    """Why a Linear/Conv2d cannot be preconditioned by this implementation, or None."""
    if isinstance(module, nn.Conv2d):
        if module.groups != 1:
            return f"groups={module.groups} (only groups=1 is supported)"
        if module.padding_mode != "zeros":
            return f"padding_mode={module.padding_mode!r} (only 'zeros' is supported)"
    return None


def _same_padding(conv: nn.Conv2d) -> tuple[int, int, int, int]:
    """F.pad amounts reproducing padding='same' (extra odd pixel on the right, as ATen does)."""
    amounts: list[int] = []
    for dim in (1, 0):  # F.pad lists the last dimension (width) first
        total = conv.dilation[dim] * (conv.kernel_size[dim] - 1)
        amounts += [total // 2, total - total // 2]
    return amounts[0], amounts[1], amounts[2], amounts[3]


def _conv_patches(conv: nn.Conv2d, x: Tensor) -> Tensor:
    """Input patches of a Conv2d as rows: shape (n * out_h * out_w, in_channels * kh * kw).

    Columns are ordered (channel, kh, kw), the order of ``conv.weight.reshape(out, -1)``.
    """
    if x.dim() == 3:  # unbatched input (C, H, W)
        x = x.unsqueeze(0)
    padding = conv.padding
    if isinstance(padding, str):
        if padding == "same":
            x = F.pad(x, _same_padding(conv))
        padding = 0
    cols = F.unfold(
        x, conv.kernel_size, dilation=conv.dilation, padding=padding, stride=conv.stride
    )
    return cols.transpose(1, 2).reshape(-1, cols.shape[1])


def _activation_rows(layer: _Layer, a: Tensor) -> tuple[Tensor, int]:
    """Activation rows for the A factor (with a ones column for the bias) and the sample count."""
    if isinstance(layer.module, nn.Conv2d):
        samples = a.shape[0] if a.dim() == 4 else 1
        rows = _conv_patches(layer.module, a)
    else:
        rows = a.reshape(-1, a.shape[-1])
        samples = rows.shape[0]
    if layer.has_bias:
        # Bias as the weight of a constant input 1, the homogeneous-coordinate trick of K-FAC.
        rows = torch.cat([rows, rows.new_ones(rows.shape[0], 1)], dim=1)
    return rows, samples


def _gradient_rows(layer: _Layer, g: Tensor) -> Tensor:
    """Output gradients as rows: (n, out) for Linear, (n * out_h * out_w, out) for Conv2d."""
    if isinstance(layer.module, nn.Conv2d):
        if g.dim() == 3:
            g = g.unsqueeze(0)
        return g.permute(0, 2, 3, 1).reshape(-1, g.shape[1])
    return g.reshape(-1, g.shape[-1])


def _kronecker_factors(layer: _Layer, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """A and G from all pairs collected since the last step, treated as one concatenated batch.

    Normalisation (KFC, Grosse & Martens 2016; Linear is the case of one position):
      A = sum over all rows (samples x positions) of a a^T / (n * positions)   -- a mean
      G = positions * mean over rows of (n g)(n g)^T = n * sum over rows of g g^T
    with n the number of samples. The product A (x) G then equals KFC's Omega (x) Gamma, where
    Omega sums over positions and Gamma averages over them; here the positions factor sits in G.
    ``g`` is dL/d(output) of a loss averaged over the n samples, i.e. 1/n times the per-sample
    gradient, hence the factor n (as in ACKTR's and kfac-pytorch's implementations). Pairs from
    several forwards are pooled with n = their total sample count, so two forwards of x1 and x2
    with a mean loss over both give the same factors as one forward of cat(x1, x2).
    """
    a_rows, g_rows, samples = [], [], 0
    for a, g in layer.pairs:
        rows, n = _activation_rows(layer, a.to(dtype))
        a_rows.append(rows)
        g_rows.append(_gradient_rows(layer, g.to(dtype)))
        samples += n
    a_all = torch.cat(a_rows)
    g_all = torch.cat(g_rows)
    factor_a = a_all.T @ a_all / a_all.shape[0]
    factor_g = (g_all.T @ g_all) * samples
    return factor_a, factor_g


def _damped_inverse(matrix: Tensor, damping: float) -> Tensor | None:
    """(matrix + damping I)^-1 via Cholesky in float64, or None if it is not positive definite."""
    m64 = matrix.double()
    m64 = m64 + damping * torch.eye(m64.shape[0], dtype=m64.dtype, device=m64.device)
    chol, info = torch.linalg.cholesky_ex(m64)
    if int(info) != 0:  # NaN/inf statistics; the caller keeps the previous inverse
        return None
    return torch.cholesky_inverse(chol).to(matrix.dtype)


def _pi_damping(factor_a: Tensor, factor_g: Tensor, damping: float) -> tuple[float, float]:
    """Factored Tikhonov damping split by pi (Martens & Grosse 2015, §6.3).

    (A + pi sqrt(damping) I) (x) (G + sqrt(damping)/pi I) with pi^2 = (tr A / dim A) /
    (tr G / dim G): the damping is shared in proportion to the factors' average eigenvalues, so
    that the arbitrary scale split between A and G (e.g. the factor n in G) does not decide which
    factor the damping dominates. pi = 1 when a trace is not positive (e.g. zero gradients).
    """
    mean_a = float(torch.trace(factor_a)) / factor_a.shape[0]
    mean_g = float(torch.trace(factor_g)) / factor_g.shape[0]
    pi = math.sqrt(mean_a / mean_g) if mean_a > 0.0 and mean_g > 0.0 else 1.0
    if not math.isfinite(pi) or pi == 0.0:
        pi = 1.0
    root = math.sqrt(damping)
    return pi * root, root / pi


def _eigen(matrix: Tensor) -> tuple[Tensor, Tensor] | None:
    """Eigenvalues (clamped at 0: a second moment is PSD, negatives are rounding) and vectors
    of a symmetric factor, in float64; None if the statistics are not finite."""
    m64 = matrix.double()
    if not bool(torch.isfinite(m64).all()):
        return None
    values, vectors = torch.linalg.eigh(m64)
    return values.clamp_min(0.0).to(matrix.dtype), vectors.to(matrix.dtype)


def _eigen_damped_solve(grad: Tensor, state: dict[str, Any], damping: float) -> Tensor:
    """(A (x) G + damping I)^-1 applied to the (out, in) gradient matrix, via eigenbases.

    ACKTR's damping (baselines acktr/kfac.py with ``factored_damping=False``, the default):
    with A = Q_A diag(s_A) Q_A^T and G = Q_G diag(s_G) Q_G^T, the damped Fisher block
    A (x) G + lambda I has eigenvalues s_A[j] * s_G[i] + lambda in the basis Q_A (x) Q_G, so
    the solve is Q_G [(Q_G^T grad Q_A) / (s_G s_A^T + lambda)] Q_A^T -- exact, where the
    factored (pi) damping of Martens & Grosse §6.3 approximates it.
    """
    q_a, q_g = state["kfac_QA"], state["kfac_QG"]
    projected = q_g.T @ grad @ q_a
    projected = projected / (torch.outer(state["kfac_sG"], state["kfac_sA"]) + damping)
    return q_g @ projected @ q_a.T


def _ema_(state: dict[str, Any], key: str, value: Tensor, decay: float) -> None:
    """Exponential moving average, initialised with the first value (no zero bias)."""
    if key not in state:
        state[key] = value.clone()
    else:
        state[key].mul_(decay).add_(value, alpha=1.0 - decay)


class KFAC(torch.optim.Optimizer):
    """K-FAC preconditioning of every ``nn.Linear`` / ``nn.Conv2d``, then an inner update.

    For a layer with weight W (out x in, bias appended as a last column) the Fisher block is
    approximated as A (x) G, A the second moment of the layer inputs and G that of the gradients
    w.r.t. its outputs (Martens & Grosse 2015, §3; KFC for convolutions). The gradient is
    replaced by the damped solve ``(A (x) G + damping)^-1 [grad_W, grad_b]``, optionally scaled
    by a KL trust region, and the inner update is applied to it. Parameters that are not the
    weight/bias of such a layer (a log_std Parameter, BatchNorm, ...) get the inner update only.

    The suite's table offers two configurations (suite/optimizers/__init__.py): ``kfac``
    (:class:`KFACNatural`, the K-FAC of ACKTR: eigen-damping, KL clipping, momentum SGD) and
    ``kfac_adam`` (:class:`KFACAdam`: pi-damped preconditioner in front of Adam, whose
    per-element normalisation undoes much of the preconditioning -- its first step is exactly
    ``lr * sign(...)``). This base class keeps its historical defaults (pi damping, torch SGD).

    Empirical Fisher: G is built from the gradients of the loss actually being minimised, not
    from targets sampled from the model's predictive distribution as in K-FAC proper and ACKTR.
    That makes it usable for any loss the suite trains with (TD errors, GAN and VAE losses,
    policy-gradient surrogates) without a per-model sampling rule; the price is that it is the
    gradient second moment rather than the true Fisher (Kunstner et al. 2019 discuss the gap).

    Statistics capture: a forward hook on each layer keeps its input (only when grad mode is on
    and the layer is in training mode) and registers a hook on that forward's output tensor;
    in backward the hook pairs the output gradient with exactly that input. Forwards that are
    never backpropagated (target computations, rollouts) contribute nothing, and several forwards
    before one backward each pair correctly. Completed pairs are consumed by ``step()`` and
    dropped by ``zero_grad()``.

    Damping (``damping_mode``): ``"pi"``, factored Tikhonov damping split by pi (Martens &
    Grosse 2015, §6.3), see :func:`_pi_damping`, inverses via Cholesky; ``"eigen"``, ACKTR's
    damping of the eigenvalue products, see :func:`_eigen_damped_solve`. The inverses (or
    eigendecompositions) are recomputed at the first statistics update of a layer and then
    every ``update_freq``-th one, in float64. The factors are averaged with ``stat_decay``
    every step (initialised with the first value).

    KL clipping (``kl_clip`` = delta, Wu et al. 2017 §3.1): with ``v`` the preconditioned
    gradient of all parameters and ``g`` the raw one, every ``v`` is scaled by
    ``min(1, sqrt(2 delta / (lr**2 * g.v)))`` before the inner update, so that the step's
    quadratic KL estimate ``lr**2 v^T F v / 2`` is at most delta. (baselines kfac.py computes
    ``min(1, sqrt(clip_kl / (lr**2 * g.v)))``: its ``clip_kl`` is 2 delta.)

    All K-FAC state lives in ``self.state[layer.weight]`` (keys ``kfac_A``, ``kfac_G``,
    ``kfac_A_inv``, ``kfac_G_inv`` or ``kfac_QA``, ``kfac_sA``, ``kfac_QG``, ``kfac_sG``, and
    ``kfac_step``) next to the inner update's buffers, so ``state_dict()`` /
    ``load_state_dict()`` resume a run exactly.

    Args:
        params: parameters to optimise (tensors or param-group dicts).
        lr: learning rate of the inner update.
        modules: a module or modules searched for Linear/Conv2d layers whose weight is in
            ``params``; those are preconditioned.
        damping: Tikhonov damping lambda.
        stat_decay: EMA decay of the factors.
        update_freq: recompute the inverses every this many statistics updates.
        inner: "sgd" (torch.optim.SGD's momentum: buf = m buf + v, p -= lr buf), "acktr"
            (baselines' tf.train.MomentumOptimizer(lr * (1 - m), m): the same buffer,
            p -= lr (1 - m) buf) or "adam".
        momentum: momentum of "sgd" / "acktr".
        betas, eps: Adam's.
        weight_decay: L2 term added to the (preconditioned) gradient in the inner update, as
            when the preconditioner wraps ``torch.optim.SGD`` (kfac-pytorch does that).
        damping_mode: "pi" or "eigen" (above).
        kl_clip: the trust region delta, or None for none.
    """

    # The suite's optimizer builder passes ``modules=`` to optimizers that declare this.
    requires_modules: ClassVar[bool] = True

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-3,
        *,
        modules: nn.Module | Iterable[nn.Module],
        damping: float = 1e-3,
        stat_decay: float = 0.95,
        update_freq: int = 10,
        inner: str = "sgd",
        momentum: float = 0.9,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        damping_mode: str = "pi",
        kl_clip: float | None = None,
    ) -> None:
        _check_kfac_args(
            lr, damping, stat_decay, update_freq, inner, momentum, betas, eps, weight_decay
        )
        if damping_mode not in DAMPING_MODES:
            raise ValueError(
                f"KFAC: damping_mode must be one of {DAMPING_MODES}, got {damping_mode!r}"
            )
        if kl_clip is not None and not kl_clip > 0.0:
            raise ValueError(f"KFAC: kl_clip must be > 0 or None, got {kl_clip}")
        defaults = {
            "lr": lr,
            "damping": damping,
            "stat_decay": stat_decay,
            "update_freq": update_freq,
            "inner": inner,
            "momentum": momentum,
            "betas": betas,
            "eps": eps,
            "weight_decay": weight_decay,
            "damping_mode": damping_mode,
            "kl_clip": kl_clip,
        }
        super().__init__(params, defaults)
        self._layers = self._find_layers(_as_module_list(modules))
        for layer in self._layers:
            layer.handle = layer.module.register_forward_hook(self._make_forward_hook(layer))

    # -- layer discovery and hooks -------------------------------------------------------------

    def _find_layers(self, modules: list[nn.Module]) -> list[_Layer]:
        owned = {id(p) for group in self.param_groups for p in group["params"]}
        layers: list[_Layer] = []
        seen: set[int] = set()
        skipped: list[str] = []
        for root in modules:
            for module in root.modules():
                if not isinstance(module, nn.Linear | nn.Conv2d) or id(module) in seen:
                    continue
                seen.add(id(module))
                if id(module.weight) not in owned:
                    continue
                reason = _unsupported_reason(module)
                if reason is not None:
                    skipped.append(f"{module}: {reason}")
                    warnings.warn(
                        f"KFAC: not preconditioning {module}: {reason}; it gets the "
                        "plain inner update",
                        stacklevel=3,
                    )
                    continue
                has_bias = module.bias is not None and id(module.bias) in owned
                layers.append(_Layer(module=module, has_bias=has_bias))
        if not layers:
            detail = f" (skipped: {'; '.join(skipped)})" if skipped else ""
            raise ValueError(
                "KFAC: no nn.Linear or nn.Conv2d whose weight is among params "
                f"was found in modules{detail}"
            )
        return layers

    @staticmethod
    def _make_forward_hook(layer: _Layer) -> Callable[[nn.Module, tuple[Any, ...], Any], None]:
        # A closure rather than a bound method: copy.deepcopy(model) copies the hook dict, and a
        # bound method would deep-copy the whole optimizer with it. The identity check below
        # makes such a copy (e.g. a target network) contribute nothing to this layer's factors.
        def hook(module: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
            if module is not layer.module or not module.training:
                return
            if not torch.is_grad_enabled() or not isinstance(output, Tensor):
                return
            if not output.requires_grad:
                return
            activation = inputs[0].detach()

            def pair_with_gradient(grad: Tensor) -> None:
                layer.pairs.append((activation, grad.detach()))

            output.register_hook(pair_with_gradient)

        return hook

    def remove_hooks(self) -> None:
        """Detach the forward hooks from the modules (the optimizer then stops collecting)."""
        for layer in self._layers:
            if layer.handle is not None:
                layer.handle.remove()
                layer.handle = None

    def zero_grad(self, set_to_none: bool = True) -> None:
        # Drop completed pairs too. In stable-baselines3 SAC the actor loss backpropagates
        # through the critic, which would add actor-loss pairs to the critic's layers; SB3 calls
        # critic.optimizer.zero_grad() after the critic forward and before critic_loss.backward(),
        # so clearing here keeps only the critic loss's own pairs (whose forward is still pending
        # and therefore unaffected).
        super().zero_grad(set_to_none=set_to_none)
        for layer in self._layers:
            layer.pairs.clear()

    # -- step ----------------------------------------------------------------------------------

    @torch.no_grad()
    def step(self, closure: Closure = None) -> float | Tensor | None:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        group_of = {id(p): group for group in self.param_groups for p in group["params"]}
        raw = {}  # raw gradients of the preconditioned tensors, for the KL clip
        # .get: param groups restored from a checkpoint written before these keys existed.
        clipping = any(group.get("kl_clip") is not None for group in self.param_groups)
        for layer in self._layers:
            if layer.pairs and layer.module.weight.grad is not None:
                if clipping:
                    raw.update(_layer_gradients(layer))
                self._precondition(layer, group_of[id(layer.module.weight)])
            layer.pairs.clear()
        for group in self.param_groups:
            if group.get("kl_clip") is not None:
                _kl_clip_(group, raw)
            for param in group["params"]:
                if param.grad is not None:
                    _inner_update(param, self.state[param], group)
        return loss

    def _precondition(self, layer: _Layer, group: dict[str, Any]) -> None:
        """Update the factors, maybe the inverses, and replace the layer's gradient."""
        weight = layer.module.weight
        state = self.state[weight]
        factor_a, factor_g = _kronecker_factors(layer, weight.dtype)
        _ema_(state, "kfac_A", factor_a, group["stat_decay"])
        _ema_(state, "kfac_G", factor_g, group["stat_decay"])
        state["kfac_step"] = state.get("kfac_step", 0) + 1
        due = (state["kfac_step"] - 1) % group["update_freq"] == 0
        eigen = group.get("damping_mode", "pi") == "eigen"
        ready = "kfac_QA" if eigen else "kfac_A_inv"
        if due or ready not in state:
            if eigen:
                self._update_eigenbases(state)
            else:
                self._update_inverses(state, group["damping"])
        if ready not in state:  # the inversion has never succeeded: plain gradient
            return
        grad = _gradient_matrix(layer)
        if eigen:
            _set_gradient(layer, _eigen_damped_solve(grad, state, group["damping"]))
        else:
            _set_gradient(layer, state["kfac_G_inv"] @ grad @ state["kfac_A_inv"])

    @staticmethod
    def _update_inverses(state: dict[str, Any], damping: float) -> None:
        damp_a, damp_g = _pi_damping(state["kfac_A"], state["kfac_G"], damping)
        inv_a = _damped_inverse(state["kfac_A"], damp_a)
        inv_g = _damped_inverse(state["kfac_G"], damp_g)
        if inv_a is None or inv_g is None:
            warnings.warn(
                "KFAC: factor inversion failed (non-finite statistics?); keeping the "
                "previous inverses",
                stacklevel=4,
            )
            return
        state["kfac_A_inv"] = inv_a
        state["kfac_G_inv"] = inv_g

    @staticmethod
    def _update_eigenbases(state: dict[str, Any]) -> None:
        eig_a, eig_g = _eigen(state["kfac_A"]), _eigen(state["kfac_G"])
        if eig_a is None or eig_g is None:
            warnings.warn(
                "KFAC: eigendecomposition failed (non-finite statistics?); keeping the "
                "previous eigenbases",
                stacklevel=4,
            )
            return
        state["kfac_sA"], state["kfac_QA"] = eig_a
        state["kfac_sG"], state["kfac_QG"] = eig_g


class KFACNatural(KFAC):
    """The K-FAC of the RL literature (table row ``kfac``): ACKTR's natural-gradient step.

    Wu et al. 2017 (ACKTR), §3.1 and baselines ``acktr/kfac.py`` (``KfacOptimizer``): the
    K-FAC-preconditioned gradient with damping added to the eigenvalue products
    (``factored_damping=False``), scaled by the KL trust region, then momentum SGD
    (``tf.train.MomentumOptimizer(lr * (1 - momentum), momentum)``, ``inner="acktr"``).
    Defaults are baselines ``acktr/acktr.py``'s ``KfacOptimizer(learning_rate=0.25,
    clip_kl=0.001, momentum=0.9, kfac_update=1, epsilon=0.01, stats_decay=0.99, cold_iter=10,
    max_grad_norm=0.5)``, with baselines' ``clip_kl`` = 2 delta, so ``kl_clip`` (delta) =
    5e-4. Differences from ACKTR: the empirical Fisher (see :class:`KFAC`) instead of sampled
    targets; no ``cold_iter`` phase of plain clipped SGD (10 steps in ACKTR); the factors are
    initialised with their first value; synchronous eigendecompositions.
    """

    def __init__(
        self,
        params: ParamsT,
        lr: float = 0.25,
        *,
        modules: nn.Module | Iterable[nn.Module],
        damping: float = 1e-2,
        stat_decay: float = 0.99,
        update_freq: int = 1,
        momentum: float = 0.9,
        kl_clip: float | None = 5e-4,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(
            params,
            lr,
            modules=modules,
            damping=damping,
            stat_decay=stat_decay,
            update_freq=update_freq,
            inner="acktr",
            momentum=momentum,
            weight_decay=weight_decay,
            damping_mode="eigen",
            kl_clip=kl_clip,
        )


class KFACAdam(KFAC):
    """K-FAC-preconditioned gradients handed to Adam (table row ``kfac_adam``).

    Not an algorithm from the K-FAC papers: Adam's per-element normalisation undoes most of the
    preconditioning (its first step is lr * sign(F^-1 g)). Pi-damped factors (Martens & Grosse
    2015, §6.3) by default; no trust region.
    """

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-3,
        *,
        modules: nn.Module | Iterable[nn.Module],
        damping: float = 1e-3,
        stat_decay: float = 0.95,
        update_freq: int = 10,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        damping_mode: str = "pi",
    ) -> None:
        super().__init__(
            params,
            lr,
            modules=modules,
            damping=damping,
            stat_decay=stat_decay,
            update_freq=update_freq,
            inner="adam",
            betas=betas,
            eps=eps,
            weight_decay=weight_decay,
            damping_mode=damping_mode,
        )


def _check_kfac_args(
    lr: float,
    damping: float,
    stat_decay: float,
    update_freq: int,
    inner: str,
    momentum: float,
    betas: tuple[float, float],
    eps: float,
    weight_decay: float,
) -> None:
    check_settings(
        "KFAC",
        {
            "lr must be >= 0": (lr >= 0.0, lr),
            "damping must be > 0": (damping > 0.0, damping),
            "stat_decay must be in [0, 1)": (0.0 <= stat_decay < 1.0, stat_decay),
            "update_freq must be >= 1": (update_freq >= 1, update_freq),
            f"inner must be one of {INNER_UPDATES}": (inner in INNER_UPDATES, repr(inner)),
            "momentum must be >= 0": (momentum >= 0.0, momentum),
            "betas must be in [0, 1)": (all(0.0 <= beta < 1.0 for beta in betas), betas),
            "eps must be >= 0": (eps >= 0.0, eps),
            "weight_decay must be >= 0": (weight_decay >= 0.0, weight_decay),
        },
    )


def _layer_gradients(layer: _Layer) -> dict[int, Tensor]:
    """Copies of a layer's raw weight and bias gradients, keyed by parameter id."""
    grads = {id(layer.module.weight): layer.module.weight.grad.clone()}
    bias = layer.module.bias
    if layer.has_bias and bias.grad is not None:
        grads[id(bias)] = bias.grad.clone()
    return grads


def _kl_clip_(group: dict[str, Any], raw: dict[int, Tensor]) -> None:
    """Scale the group's (preconditioned) gradients by min(1, sqrt(2 delta / (lr^2 g.v)))."""
    dot = None
    grads = []
    for param in group["params"]:
        if param.grad is None:
            continue
        v = param.grad
        g = raw.get(id(param), v)  # parameters without K-FAC: v = g
        term = (v * g).sum()
        dot = term if dot is None else dot + term
        grads.append(v)
    if dot is None:
        return
    quadratic = dot * group["lr"] ** 2
    # On the device, no .item(); a non-positive g.v (impossible for PSD F) leaves the step as is.
    bound = torch.sqrt(2.0 * group["kl_clip"] / quadratic.clamp_min(torch.finfo(dot.dtype).tiny))
    scale = torch.where(quadratic > 0, bound.clamp_max(1.0), torch.ones_like(bound))
    for v in grads:
        v.mul_(scale)


def _gradient_matrix(layer: _Layer) -> Tensor:
    """[grad_W, grad_b] as an (out, in[*kh*kw] [+1]) matrix."""
    weight = layer.module.weight
    grad = weight.grad.reshape(weight.shape[0], -1)
    bias = layer.module.bias
    if layer.has_bias:
        bias_grad = bias.grad if bias.grad is not None else torch.zeros_like(bias)
        grad = torch.cat([grad, bias_grad.unsqueeze(1)], dim=1)
    return grad


def _set_gradient(layer: _Layer, matrix: Tensor) -> None:
    """Write a preconditioned (out, in[+1]) matrix back into weight.grad and bias.grad."""
    # copy_ into the existing .grad tensors so that references to them stay valid.
    weight = layer.module.weight
    if layer.has_bias:
        bias = layer.module.bias
        if bias.grad is None:
            bias.grad = torch.zeros_like(bias)
        bias.grad.copy_(matrix[:, -1].reshape(bias.shape))
        matrix = matrix[:, :-1]
    weight.grad.copy_(matrix.reshape(weight.shape))


def _inner_update(param: Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
    grad = param.grad
    if group["weight_decay"] != 0.0:
        grad = grad.add(param, alpha=group["weight_decay"])
    if group["inner"] == "sgd":
        _sgd_update(param, grad, state, group)
    elif group["inner"] == "acktr":
        _sgd_update(param, grad, state, group, lr_factor=1.0 - group["momentum"])
    elif group["inner"] == "adam":
        _adam_update(param, grad, state, group)
    else:
        raise ValueError(f"KFAC: inner must be one of {INNER_UPDATES}, got {group['inner']!r}")


def _sgd_update(
    param: Tensor,
    grad: Tensor,
    state: dict[str, Any],
    group: dict[str, Any],
    lr_factor: float = 1.0,
) -> None:
    """SGD with heavy-ball momentum, torch.optim.SGD's convention (buf = m * buf + grad);
    the step is lr * lr_factor * buf (baselines' ACKTR: lr_factor = 1 - m)."""
    if group["momentum"] != 0.0:
        if "momentum_buffer" not in state:
            state["momentum_buffer"] = grad.clone()
        else:
            state["momentum_buffer"].mul_(group["momentum"]).add_(grad)
        grad = state["momentum_buffer"]
    param.add_(grad, alpha=-group["lr"] * lr_factor)


def _adam_update(param: Tensor, grad: Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
    """Adam (Kingma & Ba 2015, Algorithm 1) with bias correction."""
    if "exp_avg" not in state:
        state["step"] = 0
        state["exp_avg"] = torch.zeros_like(param)
        state["exp_avg_sq"] = torch.zeros_like(param)
    beta1, beta2 = group["betas"]
    state["step"] += 1
    step = state["step"]
    state["exp_avg"].mul_(beta1).add_(grad, alpha=1.0 - beta1)
    state["exp_avg_sq"].mul_(beta2).addcmul_(grad, grad, value=1.0 - beta2)
    denom = (state["exp_avg_sq"] / (1.0 - beta2**step)).sqrt_().add_(group["eps"])
    param.addcdiv_(state["exp_avg"], denom, value=-group["lr"] / (1.0 - beta1**step))
