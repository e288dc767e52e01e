"""Optimizers the suite compares that neither torch nor pytorch-optimizer provide as needed.

* :class:`RMSpropDeepMind` -- the RMSprop variant of the Nature DQN paper (Mnih et al. 2015,
  "Human-level control through deep reinforcement learning", Extended Data Table 1; code:
  deepmind/dqn ``NeuralQLearner.lua``). It is centered and puts ``eps`` *inside* the square
  root, which ``torch.optim.RMSprop(centered=True)`` does not do.
* :class:`LAMB` -- You et al. 2020, Algorithm 2 (pytorch-optimizer's ``Lamb`` applies the bias
  correction outside the trust ratio, which no kwarg undoes).
* :class:`Lookahead` -- a wrapper around any torch optimizer (Zhang et al. 2019, "Lookahead
  Optimizer: k steps forward, 1 step back").
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor

Closure = Callable[[], float | Tensor] | None
ParamsT = Iterable[Tensor] | Iterable[dict[str, Any]]


# --------------------------------------------------------------------------------------------
# RMSprop as in the Nature DQN code
# --------------------------------------------------------------------------------------------


def check_settings(owner: str, rules: dict[str, tuple[bool, Any]]) -> None:
    """Raise ValueError naming the first setting outside its range.

    :param rules: "lr must be >= 0" -> (whether it holds, the value given), in order.
    """
    for rule, (holds, value) in rules.items():
        if not holds:
            raise ValueError(f"{owner}: {rule}, got {value}")


class PerParameter(torch.optim.Optimizer):
    """An optimizer whose step updates each parameter with a gradient on its own
    (``_update(param, group)``), as torch's own single-tensor loops do."""

    @torch.no_grad()
    def step(self, closure: Closure = None) -> float | Tensor | None:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for param in group["params"]:
                if param.grad is not None:
                    self._update(param, group)
        return loss

    def _update(self, param: Tensor, group: dict[str, Any]) -> None:
        raise NotImplementedError


class RMSpropDeepMind(PerParameter):
    """Centered RMSprop of Mnih et al. (2015) with ``eps`` inside the square root.

    Per parameter, with ``decay`` the "gradient momentum" and "squared gradient momentum"
    (both 0.95 in Extended Data Table 1), ``eps`` the "min squared gradient" (0.01) and ``s`` =
    ``loss_scale``::

        g     = decay * g  + (1 - decay) * grad
        g2    = decay * g2 + (1 - decay) * grad**2
        param = param - lr * grad / sqrt(g2 - g**2 + eps / s**2)

    With ``s = 1`` this is ``NeuralQLearner.lua``'s ``g:mul(0.95):add(0.05, dw)``,
    ``g2:mul(0.95):add(0.05, dw*dw)``, ``tmp = sqrt(g2 - g*g + 0.01)``, ``w:add(lr * dw / tmp)``;
    there ``dw`` is the negative gradient, so the Lua ``w += lr*dw/tmp`` is the descent step
    written above. The numerator is the raw gradient, not the averaged one.
    ``torch.optim.RMSprop(centered=True)`` instead divides by ``sqrt(g2 - g**2) + eps``.

    ``loss_scale``: eps sits inside the square root, so the update is not invariant to the scale
    of the loss. The Lua code's ``dw`` is the gradient of the TD loss *summed* over its 32-sample
    minibatch (``getQUpdate`` backpropagates one clipped TD error per sample, unaveraged), while
    a trainer that takes the batch *mean* (agents/dqn.py) hands this optimizer 1/B of it. The
    Lua rule on ``s * grad`` is ``lr * s*grad / sqrt(s**2 * (g2 - g**2) + eps)`` = the update
    above, so ``loss_scale = B`` reproduces Nature DQN exactly on a mean-reduced loss over B
    samples (tests/test_optimizer_references.py checks hundreds of steps against the Lua rule
    on summed gradients). With ``B = 32``, ``eps / B**2`` = 9.8e-6: Dopamine's Nature-DQN config
    (dqn_nature.gin: mean loss, ``RMSPropOptimizer(centered=True, epsilon=0.00001)``, TF's eps
    also inside the root) is the same correction, rounded.

    ``weight_decay`` adds ``weight_decay * param`` to the gradient (L2, coupled) before the
    statistics; the DQN paper uses none.
    """

    def __init__(
        self,
        params: ParamsT,
        lr: float = 2.5e-4,
        decay: float = 0.95,
        eps: float = 0.01,
        weight_decay: float = 0.0,
        loss_scale: float = 1.0,
    ) -> None:
        check_settings(
            "RMSpropDeepMind",
            {
                "lr must be >= 0": (lr >= 0.0, lr),
                "decay must be in [0, 1)": (0.0 <= decay < 1.0, decay),
                "eps must be > 0": (eps > 0.0, eps),
                "weight_decay must be >= 0": (weight_decay >= 0.0, weight_decay),
                "loss_scale must be > 0": (loss_scale > 0.0, loss_scale),
            },
        )
        defaults = {
            "lr": lr,
            "decay": decay,
            "eps": eps,
            "weight_decay": weight_decay,
            "loss_scale": loss_scale,
        }
        super().__init__(params, defaults)

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        for group in self.param_groups:  # state saved before loss_scale existed
            group.setdefault("loss_scale", 1.0)

    def _update(self, param: Tensor, group: dict[str, Any]) -> None:
        grad = param.grad
        if group["weight_decay"] != 0.0:
            grad = grad.add(param, alpha=group["weight_decay"])
        state = self.state[param]
        if not state:
            # The Lua code starts both averages at zero (torch.zeros in NeuralQLearner:__init).
            state["step"] = 0
            state["grad_avg"] = torch.zeros_like(param)
            state["square_avg"] = torch.zeros_like(param)
        decay = group["decay"]
        state["step"] += 1
        state["grad_avg"].mul_(decay).add_(grad, alpha=1.0 - decay)
        state["square_avg"].mul_(decay).addcmul_(grad, grad, value=1.0 - decay)
        # eps inside the root, at the scale of this gradient: sqrt(g2 - g^2 + eps / s^2).
        # g2 - g^2 >= 0 up to rounding, and eps > 0 keeps the argument positive.
        denom = state["square_avg"].addcmul(state["grad_avg"], state["grad_avg"], value=-1.0)
        denom.add_(group["eps"] / group.get("loss_scale", 1.0) ** 2).sqrt_()
        param.addcdiv_(grad, denom, value=-group["lr"])


# --------------------------------------------------------------------------------------------
# LAMB
# --------------------------------------------------------------------------------------------


class LAMB(PerParameter):
    """LAMB, You et al. 2020 ("Large Batch Optimization for Deep Learning: Training BERT in 76
    minutes", ICLR), Algorithm 2, per parameter tensor x (one "layer" i)::

        m = beta1 * m + (1 - beta1) * g          v = beta2 * v + (1 - beta2) * g**2
        m_hat = m / (1 - beta1**t)               v_hat = v / (1 - beta2**t)
        r = m_hat / (sqrt(v_hat) + eps)
        u = r + weight_decay * x
        x = x - lr * phi(||x||) / ||u|| * u

    with phi the identity (the paper's experiments; its analysis bounds phi in [gamma_l,
    gamma_u]). The bias correction is inside r, so the trust ratio fixes the step's norm to
    lr * ||x|| from the first step on.

    Zero norms: Algorithm 2 with phi(z) = z gives a tensor with ||x|| = 0 (a zero-initialised
    bias) the ratio 0 / ||u|| = 0, so it would never move. The authors' released implementation
    (tensorflow_addons ``LAMB._resource_apply_dense``: ``ratio = where(w_norm > 0, where(g_norm >
    0, w_norm / g_norm, 1), 1)``; NVIDIA apex FusedLAMB does the same) uses ratio 1 when either
    norm is zero, i.e. a plain bias-corrected Adam step ``lr * u``. That is the convention here;
    ``zero_norm_ratio`` sets the value if one wants the literal phi(0) = 0 (``0.0``).

    ``eps`` 1e-6 is the tensorflow_addons default (the paper gives none). Weight decay is the
    decoupled ``lambda * x`` inside the trust ratio, as in Algorithm 2.
    """

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-6,
        weight_decay: float = 0.0,
        zero_norm_ratio: float = 1.0,
    ) -> None:
        check_settings(
            "LAMB",
            {
                "lr must be >= 0": (lr >= 0.0, lr),
                "betas must be in [0, 1)": (all(0.0 <= beta < 1.0 for beta in betas), betas),
                "eps must be >= 0": (eps >= 0.0, eps),
                "weight_decay must be >= 0": (weight_decay >= 0.0, weight_decay),
                "zero_norm_ratio must be >= 0": (zero_norm_ratio >= 0.0, zero_norm_ratio),
            },
        )
        defaults = {
            "lr": lr,
            "betas": tuple(betas),
            "eps": eps,
            "weight_decay": weight_decay,
            "zero_norm_ratio": zero_norm_ratio,
        }
        super().__init__(params, defaults)

    def _update(self, param: Tensor, group: dict[str, Any]) -> None:
        grad = param.grad
        state = self.state[param]
        if not state:
            state["step"] = 0
            state["exp_avg"] = torch.zeros_like(param)
            state["exp_avg_sq"] = torch.zeros_like(param)
        beta1, beta2 = group["betas"]
        state["step"] += 1
        t = state["step"]
        state["exp_avg"].mul_(beta1).add_(grad, alpha=1.0 - beta1)
        state["exp_avg_sq"].mul_(beta2).addcmul_(grad, grad, value=1.0 - beta2)
        m_hat = state["exp_avg"] / (1.0 - beta1**t)
        v_hat = state["exp_avg_sq"] / (1.0 - beta2**t)
        update = m_hat / (v_hat.sqrt() + group["eps"])
        if group["weight_decay"] != 0.0:
            update.add_(param, alpha=group["weight_decay"])
        # Kept on the device (no .item()): a host read per tensor per step would sync a GPU.
        w_norm = torch.linalg.vector_norm(param)
        u_norm = torch.linalg.vector_norm(update)
        fallback = torch.full_like(w_norm, group["zero_norm_ratio"])
        ratio = torch.where((w_norm > 0) & (u_norm > 0), w_norm / u_norm, fallback)
        param.add_(update * ratio, alpha=-group["lr"])


# --------------------------------------------------------------------------------------------
# Lookahead
# --------------------------------------------------------------------------------------------


class Lookahead:
    """Lookahead (Zhang et al. 2019, Algorithm 1) around any torch optimizer.

    The inner ("fast") optimizer takes k steps; then the slow weights move a fraction alpha
    towards the fast ones and the fast weights restart from there::

        slow = slow + alpha * (fast - slow);  fast = slow

    The slow weights start at the initial parameters. This is deliberately not a
    ``torch.optim.Optimizer`` subclass: learning-rate schedulers (and SB3's learning-rate
    updates) act on ``param_groups``, and ``param_groups`` here *is* the inner optimizer's list,
    so a scheduler is attached to ``lookahead.inner`` and its changes are seen through the
    wrapper; subclassing would create a second set of param groups that could drift apart.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, k: int = 5, alpha: float = 0.5) -> None:
        check_settings(
            "Lookahead",
            {"k must be >= 1": (k >= 1, k), "alpha must be in (0, 1]": (0.0 < alpha <= 1.0, alpha)},
        )
        self.inner = optimizer
        self.k = k
        self.alpha = alpha
        self.counter = 0
        self.slow = [p.detach().clone() for p in self._params()]

    def _params(self) -> list[Tensor]:
        return [p for group in self.inner.param_groups for p in group["params"]]

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        return self.inner.param_groups

    @property
    def state(self) -> Any:
        return self.inner.state

    @property
    def defaults(self) -> dict[str, Any]:
        return self.inner.defaults

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.inner.zero_grad(set_to_none=set_to_none)

    def step(self, closure: Closure = None) -> float | Tensor | None:
        loss = self.inner.step(closure)
        self.counter += 1
        if self.counter % self.k == 0:
            self._synchronise()
        return loss

    @torch.no_grad()
    def _synchronise(self) -> None:
        for fast, slow in zip(self._params(), self.slow, strict=True):
            slow.add_(fast - slow, alpha=self.alpha)
            fast.copy_(slow)

    def state_dict(self) -> dict[str, Any]:
        return {
            "inner": self.inner.state_dict(),
            "slow": [s.clone() for s in self.slow],
            "counter": self.counter,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.inner.load_state_dict(state_dict["inner"])
        slow = state_dict["slow"]
        params = self._params()
        if len(slow) != len(params):
            raise ValueError(
                f"Lookahead: state has {len(slow)} slow tensors for {len(params)} parameters"
            )
        self.slow = [
            s.detach().to(device=p.device, dtype=p.dtype).clone()
            for s, p in zip(slow, params, strict=True)
        ]
        self.counter = int(state_dict["counter"])

    def __repr__(self) -> str:
        return f"Lookahead(k={self.k}, alpha={self.alpha}, inner={self.inner!r})"
