"""Every optimizer in the table against a float64 reference written from its paper's algorithm.

The harness (``compare``): a small two-layer tanh regression with random weight matrices and
zero-initialised biases, fresh random data every step. The table's optimizer steps float32
parameters; the reference, written here from the paper in float64, steps float64 copies with
the same gradients (upcast). Only the optimizer's float32 arithmetic separates the two, so the
tolerances sit near float32 rounding (relative 2e-5 over tens of steps); a wrong bias
correction, eps placement or decay order moves parameters by ~1e-3 and fails.

Where torch or pytorch-optimizer deviate from the paper in a documented default, the reference
follows the paper as the library parameterises it; each docstring says where.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from suite.optimizers import OPTIMIZERS, LookaheadSpec, OptimizerSpec, build_role_optimizer
from suite.optimizers.kfac import KFACAdam, KFACNatural

Params = list[Tensor]
RefStep = Callable[[Params, Params, dict, int], None]

STEPS = 30


def initial_parameters(seed: int) -> Params:
    """W1 (5x3) and W2 (2x5) random, b1 and b2 zero: nonzero and zero-initialised tensors."""
    gen = torch.Generator().manual_seed(seed)
    w1 = torch.randn(5, 3, generator=gen, dtype=torch.float64) * 0.5
    w2 = torch.randn(2, 5, generator=gen, dtype=torch.float64) * 0.5
    return [w1, torch.zeros(5, dtype=torch.float64), w2, torch.zeros(2, dtype=torch.float64)]


def regression_loss(params: Params, x: Tensor, y: Tensor) -> Tensor:
    w1, b1, w2, b2 = params
    return F.mse_loss(torch.tanh(x @ w1.T + b1) @ w2.T + b2, y)


def compare(
    make: Callable[[list[nn.Parameter]], object],
    reference: RefStep,
    steps: int = STEPS,
    seed: int = 0,
    rtol: float = 2e-5,
    atol: float = 1e-7,
) -> None:
    """Step the table's optimizer (float32) and the reference (float64) on the same gradients."""
    start = initial_parameters(seed)
    params32 = [nn.Parameter(p.float()) for p in start]
    params64 = [p.clone() for p in start]
    optimizer = make(params32)
    state: dict = {}
    gen = torch.Generator().manual_seed(seed + 1)
    for t in range(1, steps + 1):
        x = torch.randn(8, 3, generator=gen, dtype=torch.float64)
        y = torch.randn(8, 2, generator=gen, dtype=torch.float64)
        optimizer.zero_grad()
        regression_loss(params32, x.float(), y.float()).backward()
        grads = [p.grad.double() for p in params32]
        optimizer.step()
        reference(params64, grads, state, t)
        for i, (p32, p64) in enumerate(zip(params32, params64, strict=True)):
            torch.testing.assert_close(
                p32.detach().double(),
                p64,
                rtol=rtol,
                atol=atol,
                msg=lambda text, t=t, i=i: f"step {t}, tensor {i}: {text}",
            )
    # The run must have moved every tensor (zero-initialised ones included).
    assert all(not torch.equal(p, s) for p, s in zip(params64, start, strict=True))


def table(name: str, lr: float, **kwargs) -> Callable[[list[nn.Parameter]], object]:
    """The optimizer as the suite builds it from a spec."""

    def make(params: list[nn.Parameter]):
        spec = OptimizerSpec(optimizer=name, lr=lr, kwargs=kwargs)
        return build_role_optimizer("test", spec, params)

    return make


def per_tensor(state: dict, i: int) -> dict:
    return state.setdefault(i, {})


WEIGHT_DECAYS = [0.0, 0.05]


# --------------------------------------------------------------------------------------------
# SGD, momentum, Nesterov
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("weight_decay", WEIGHT_DECAYS)
def test_sgd_plain(weight_decay):
    """Robbins & Monro 1951: x <- x - lr * (g + wd * x) (L2 added to the gradient)."""

    def reference(params, grads, state, t):
        for p, g in zip(params, grads, strict=True):
            p -= 0.1 * (g + weight_decay * p)

    compare(table("sgd", 0.1, weight_decay=weight_decay), reference)


@pytest.mark.parametrize("weight_decay", WEIGHT_DECAYS)
def test_sgd_momentum(weight_decay):
    """Classical momentum, Sutskever et al. 2013, eq. 1-2: v <- mu v - lr g; x <- x + v.

    torch keeps buf = mu buf + g and steps lr * buf: v = -lr * buf for a constant lr."""
    mu, lr = 0.9, 0.05

    def reference(params, grads, state, t):
        for i, (p, g) in enumerate(zip(params, grads, strict=True)):
            s = per_tensor(state, i)
            v = mu * s.get("v", torch.zeros_like(p)) - lr * (g + weight_decay * p)
            s["v"] = v
            p += v

    compare(table("sgd", lr, momentum=mu, weight_decay=weight_decay), reference)


@pytest.mark.parametrize("weight_decay", WEIGHT_DECAYS)
def test_sgd_nesterov(weight_decay):
    """Nesterov momentum, Sutskever et al. 2013, eq. 3-4 (v <- mu v - lr grad f(x + mu v);
    x <- x + v), in the variables of Bengio, Boulanger-Lewandowski & Pascanu 2013
    ("Advances in optimizing RNNs"), which store the look-ahead point y = x + mu v:
    v_t = mu v_{t-1} - lr g(y), y <- y + mu v_t - lr g(y). torch implements this form."""
    mu, lr = 0.9, 0.05

    def reference(params, grads, state, t):
        for i, (p, g) in enumerate(zip(params, grads, strict=True)):
            s = per_tensor(state, i)
            g = g + weight_decay * p
            v = mu * s.get("v", torch.zeros_like(p)) - lr * g
            s["v"] = v
            p += mu * v - lr * g

    compare(table("sgd", lr, momentum=mu, nesterov=True, weight_decay=weight_decay), reference)


# --------------------------------------------------------------------------------------------
# AdaGrad, AdaDelta, RMSprop
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("weight_decay", WEIGHT_DECAYS)
def test_adagrad(weight_decay):
    """Duchi et al. 2011 (diagonal AdaGrad): G <- G + g^2; x <- x - lr g / (sqrt(G) + delta),
    with torch's delta = eps 1e-10 outside the root."""
    lr, eps = 0.05, 1e-10

    def reference(params, grads, state, t):
        for i, (p, g) in enumerate(zip(params, grads, strict=True)):
            s = per_tensor(state, i)
            g = g + weight_decay * p
            s["G"] = s.get("G", torch.zeros_like(p)) + g * g
            p -= lr * g / (s["G"].sqrt() + eps)

    compare(table("adagrad", lr, weight_decay=weight_decay), reference)


@pytest.mark.parametrize("weight_decay", WEIGHT_DECAYS)
def test_adadelta(weight_decay):
    """Zeiler 2012, Algorithm 1: E[g^2] <- rho E[g^2] + (1-rho) g^2;
    dx = -sqrt(E[dx^2] + eps) / sqrt(E[g^2] + eps) * g; E[dx^2] <- rho E[dx^2] + (1-rho) dx^2;
    x <- x + lr * dx (torch's lr multiplier; 1.0 is the paper). rho 0.95, eps 1e-6: the
    paper's settings."""
    rho, eps, lr = 0.95, 1e-6, 1.0

    def reference(params, grads, state, t):
        for i, (p, g) in enumerate(zip(params, grads, strict=True)):
            s = per_tensor(state, i)
            g = g + weight_decay * p
            eg = rho * s.get("Eg", torch.zeros_like(p)) + (1 - rho) * g * g
            edx = s.get("Edx", torch.zeros_like(p))
            dx = -(edx + eps).sqrt() / (eg + eps).sqrt() * g
            s["Eg"], s["Edx"] = eg, rho * edx + (1 - rho) * dx * dx
            p += lr * dx

    compare(table("adadelta", lr, rho=rho, eps=eps, weight_decay=weight_decay), reference)


@pytest.mark.parametrize("weight_decay", WEIGHT_DECAYS)
def test_rmsprop(weight_decay):
    """Tieleman & Hinton 2012, Lecture 6.5: MS <- a MS + (1-a) g^2; x <- x - lr g/(sqrt(MS)+eps)
    (torch: eps outside the root)."""
    lr, alpha, eps = 0.01, 0.9, 1e-8

    def reference(params, grads, state, t):
        for i, (p, g) in enumerate(zip(params, grads, strict=True)):
            s = per_tensor(state, i)
            g = g + weight_decay * p
            s["ms"] = alpha * s.get("ms", torch.zeros_like(p)) + (1 - alpha) * g * g
            p -= lr * g / (s["ms"].sqrt() + eps)

    compare(table("rmsprop", lr, alpha=alpha, weight_decay=weight_decay), reference)


@pytest.mark.parametrize("weight_decay", WEIGHT_DECAYS)
def test_rmsprop_centered_with_momentum(weight_decay):
    """Graves 2013 (Generating Sequences with RNNs, §4) centered RMSprop with momentum:
    n <- a n + (1-a) g^2; gbar <- a gbar + (1-a) g; D <- m D - lr g / sqrt(n - gbar^2 + eps);
    x <- x + D, with torch's eps outside the root: sqrt(n - gbar^2) + eps."""
    lr, alpha, mu, eps = 0.01, 0.95, 0.9, 1e-4

    def reference(params, grads, state, t):
        for i, (p, g) in enumerate(zip(params, grads, strict=True)):
            s = per_tensor(state, i)
            g = g + weight_decay * p
            s["n"] = alpha * s.get("n", torch.zeros_like(p)) + (1 - alpha) * g * g
            s["gbar"] = alpha * s.get("gbar", torch.zeros_like(p)) + (1 - alpha) * g
            step = g / ((s["n"] - s["gbar"] ** 2).sqrt() + eps)
            s["D"] = mu * s.get("D", torch.zeros_like(p)) - lr * step
            p += s["D"]

    make = table(
        "rmsprop",
        lr,
        alpha=alpha,
        eps=eps,
        momentum=mu,
        centered=True,
        weight_decay=weight_decay,
    )
    # n - gbar^2 cancels in float32 when the gradient is steady: allow 1e-6 absolute (the
    # parameters are ~0.5; a wrong eps placement or momentum moves them by ~1e-3).
    compare(make, reference, atol=1e-6)


def lua_rmsprop(lr: float, eps: float, scale: float, weight_decay: float = 0.0) -> RefStep:
    """deepmind/dqn NeuralQLearner.lua, qLearnMinibatch, on dw = -scale * gradient:
    g = 0.95 g + 0.05 dw; g2 = 0.95 g2 + 0.05 dw^2; tmp = sqrt(g2 - g^2 + 0.01); w += lr dw/tmp.
    """

    def reference(params, grads, state, t):
        for i, (p, grad) in enumerate(zip(params, grads, strict=True)):
            s = per_tensor(state, i)
            dw = -scale * (grad + weight_decay * p)
            s["g"] = 0.95 * s.get("g", torch.zeros_like(p)) + 0.05 * dw
            s["g2"] = 0.95 * s.get("g2", torch.zeros_like(p)) + 0.05 * dw * dw
            p += lr * dw / (s["g2"] - s["g"] ** 2 + eps).sqrt()

    return reference


@pytest.mark.parametrize("weight_decay", WEIGHT_DECAYS)
@pytest.mark.parametrize("loss_scale", [1.0, 32.0])
def test_rmsprop_deepmind_is_the_lua_rule_on_the_scaled_gradient(loss_scale, weight_decay):
    """Mnih et al. 2015, Extended Data Table 1 and NeuralQLearner.lua: with loss_scale s the
    suite's step on a gradient g is the Lua step on s * g (the batch-summed gradient when g is
    the gradient of a mean over s samples)."""
    lr, eps = 2.5e-4, 0.01
    compare(
        table(
            "rmsprop_deepmind",
            lr,
            decay=0.95,
            eps=eps,
            loss_scale=loss_scale,
            weight_decay=weight_decay,
        ),
        lua_rmsprop(lr, eps, loss_scale, weight_decay),
    )


# --------------------------------------------------------------------------------------------
# Adam family
# --------------------------------------------------------------------------------------------


def adam_moments(s: dict, g: Tensor, beta1: float, beta2: float, t: int) -> tuple[Tensor, Tensor]:
    """Kingma & Ba 2015, Algorithm 1: biased moments and their bias-corrected estimates."""
    s["m"] = beta1 * s.get("m", torch.zeros_like(g)) + (1 - beta1) * g
    s["v"] = beta2 * s.get("v", torch.zeros_like(g)) + (1 - beta2) * g * g
    return s["m"] / (1 - beta1**t), s["v"] / (1 - beta2**t)


@pytest.mark.parametrize("weight_decay", WEIGHT_DECAYS)
def test_adam(weight_decay):
    """Kingma & Ba 2015, Algorithm 1: x <- x - lr m_hat / (sqrt(v_hat) + eps); weight decay as
    torch.optim.Adam's L2 term added to g."""
    lr, b1, b2, eps = 0.01, 0.9, 0.999, 1e-8

    def reference(params, grads, state, t):
        for i, (p, g) in enumerate(zip(params, grads, strict=True)):
            m_hat, v_hat = adam_moments(per_tensor(state, i), g + weight_decay * p, b1, b2, t)
            p -= lr * m_hat / (v_hat.sqrt() + eps)

    compare(table("adam", lr, weight_decay=weight_decay), reference)


@pytest.mark.parametrize("weight_decay", WEIGHT_DECAYS)
def test_adamw(weight_decay):
    """Loshchilov & Hutter 2019, Algorithm 2 (schedule multiplier 1): x <- x - (lr m_hat /
    (sqrt(v_hat) + eps) + lambda x), with torch's lambda = lr * weight_decay."""
    lr, b1, b2, eps = 0.01, 0.9, 0.999, 1e-8

    def reference(params, grads, state, t):
        for i, (p, g) in enumerate(zip(params, grads, strict=True)):
            m_hat, v_hat = adam_moments(per_tensor(state, i), g, b1, b2, t)
            p -= lr * m_hat / (v_hat.sqrt() + eps) + lr * weight_decay * p

    compare(table("adamw", lr, weight_decay=weight_decay), reference)


@pytest.mark.parametrize("weight_decay", WEIGHT_DECAYS)
def test_nadam(weight_decay):
    """Dozat 2016, Algorithm 2 (NAdam) with the momentum schedule of its §3,
    mu_t = beta1 (1 - 0.5 * 0.96^(t psi)), psi = 0.004:
    x <- x - lr [mu_{t+1} m_t / (1 - prod_{i<=t+1} mu_i) + (1 - mu_t) g / (1 - prod_{i<=t} mu_i)]
    / (sqrt(v_hat) + eps). As torch (and Keras) parameterise it, m_t averages with beta1, not
    mu_t."""
    lr, b1, b2, eps, psi = 0.01, 0.9, 0.999, 1e-8, 0.004

    def mu(t: int) -> float:
        return b1 * (1 - 0.5 * 0.96 ** (t * psi))

    def reference(params, grads, state, t):
        product = math.prod(mu(i) for i in range(1, t + 1))
        for i, (p, g) in enumerate(zip(params, grads, strict=True)):
            s = per_tensor(state, i)
            g = g + weight_decay * p
            s["m"] = b1 * s.get("m", torch.zeros_like(p)) + (1 - b1) * g
            s["v"] = b2 * s.get("v", torch.zeros_like(p)) + (1 - b2) * g * g
            denom = (s["v"] / (1 - b2**t)).sqrt() + eps
            m_bar = mu(t + 1) * s["m"] / (1 - product * mu(t + 1)) + (1 - mu(t)) * g / (1 - product)
            p -= lr * m_bar / denom

    compare(table("nadam", lr, weight_decay=weight_decay), reference)


@pytest.mark.parametrize("weight_decay", WEIGHT_DECAYS)
def test_radam(weight_decay):
    """Liu et al. 2020, Algorithm 2: rho_inf = 2/(1-beta2) - 1, rho_t = rho_inf - 2 t beta2^t /
    (1 - beta2^t); if rho_t is large enough, x <- x - lr r_t m_hat sqrt(1-beta2^t)/sqrt(v),
    r_t = sqrt((rho_t-4)(rho_t-2) rho_inf / ((rho_inf-4)(rho_inf-2) rho_t)); else
    x <- x - lr m_hat. As torch parameterises it: the threshold is rho_t > 5 (the paper: 4)
    and eps 1e-8 is added to sqrt(v) / sqrt(1-beta2^t). 30 steps cover both branches
    (rho_t > 5 from t = 6)."""
    lr, b1, b2, eps = 0.01, 0.9, 0.999, 1e-8
    rho_inf = 2 / (1 - b2) - 1

    def reference(params, grads, state, t):
        rho = rho_inf - 2 * t * b2**t / (1 - b2**t)
        for i, (p, g) in enumerate(zip(params, grads, strict=True)):
            s = per_tensor(state, i)
            m_hat, _ = adam_moments(s, g + weight_decay * p, b1, b2, t)
            if rho > 5:
                r = math.sqrt(
                    (rho - 4) * (rho - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho)
                )
                adaptive = math.sqrt(1 - b2**t) / (s["v"].sqrt() + eps)
                p -= lr * r * m_hat * adaptive
            else:
                p -= lr * m_hat

    compare(table("radam", lr, weight_decay=weight_decay), reference)


@pytest.mark.parametrize("weight_decay", WEIGHT_DECAYS)
def test_adamax(weight_decay):
    """Kingma & Ba 2015, Algorithm 2 (AdaMax): m <- b1 m + (1-b1) g; u <- max(b2 u, |g|);
    x <- x - lr / (1 - b1^t) * m / u. As torch parameterises it: u <- max(b2 u, |g| + eps)."""
    lr, b1, b2, eps = 0.01, 0.9, 0.999, 1e-8

    def reference(params, grads, state, t):
        for i, (p, g) in enumerate(zip(params, grads, strict=True)):
            s = per_tensor(state, i)
            g = g + weight_decay * p
            s["m"] = b1 * s.get("m", torch.zeros_like(p)) + (1 - b1) * g
            s["u"] = torch.maximum(b2 * s.get("u", torch.zeros_like(p)), g.abs() + eps)
            p -= lr / (1 - b1**t) * s["m"] / s["u"]

    compare(table("adamax", lr, weight_decay=weight_decay), reference)


@pytest.mark.parametrize("weight_decay", WEIGHT_DECAYS)
def test_adafactor(weight_decay):
    """Shazeer & Stern 2018, Algorithm 4 (matrices: factored row/column second moments,
    V = R C / (1^T R)) and Algorithm 5 (vectors), update clipping d = 1 (§6), relative step
    (§8): alpha_t = max(eps2, RMS(x_{t-1})) * rho_t, rho_t = min(lr, 1/sqrt(t)), decay
    beta2_t = 1 - t^-0.8. As torch parameterises it: row/column *means* (the same V), V clamped
    at eps1^2 instead of eps1 added to g^2, weight decay x <- x (1 - lr wd) after alpha_t is
    read (lr, not rho_t). The zero biases move only eps2 * rho_t per step: lr is a cap."""
    lr, eps1, eps2, d = 0.01, torch.finfo(torch.float32).eps, 1e-3, 1.0

    def rms(x: Tensor) -> float:
        return float(x.norm() / math.sqrt(x.numel()))

    def reference(params, grads, state, t):
        beta2 = 1 - t**-0.8
        rho = min(lr, 1 / math.sqrt(t))
        for i, (p, g) in enumerate(zip(params, grads, strict=True)):
            s = per_tensor(state, i)
            alpha = max(eps2, rms(p)) * rho
            if g.dim() == 2:
                s["R"] = (1 - beta2) * (g * g).mean(dim=1, keepdim=True) + beta2 * s.get(
                    "R", torch.zeros(g.shape[0], 1, dtype=g.dtype)
                )
                s["C"] = (1 - beta2) * (g * g).mean(dim=0, keepdim=True) + beta2 * s.get(
                    "C", torch.zeros(1, g.shape[1], dtype=g.dtype)
                )
                v = s["R"] @ s["C"] / s["R"].mean().clamp_min(eps1)
            else:
                s["V"] = beta2 * s.get("V", torch.zeros_like(g)) + (1 - beta2) * g * g
                v = s["V"]
            u = g / v.clamp_min(eps1 * eps1).sqrt()
            u = u / max(1.0, rms(u) / d)
            p *= 1 - lr * weight_decay
            p -= alpha * u

    compare(table("adafactor", lr, weight_decay=weight_decay), reference)


def test_adafactor_lr_is_a_relative_step_cap():
    """Shazeer & Stern 2018, §8: a zero-initialised bias moves eps2 * min(lr, 1/sqrt(t)) per
    element at step 1 (1e-3 * lr), where Adam moves lr: what the table's note says."""
    bias = nn.Parameter(torch.zeros(4))
    optimizer = table("adafactor", 0.01)([bias])
    bias.grad = torch.tensor([1.0, -2.0, 3.0, -4.0])
    optimizer.step()
    torch.testing.assert_close(bias.detach().abs(), torch.full((4,), 1e-3 * 0.01))
    assert "relative-step CAP" in OPTIMIZERS["adafactor"].note


# --------------------------------------------------------------------------------------------
# LAMB and AdaBelief
# --------------------------------------------------------------------------------------------


def lamb_reference(lr, b1, b2, eps, weight_decay) -> RefStep:
    """You et al. 2020, Algorithm 2, phi = identity, per tensor; ratio 1 where ||x|| = 0 or
    ||u|| = 0 (the authors' tensorflow_addons convention; Alg. 2 itself would freeze a zero
    tensor)."""

    def reference(params, grads, state, t):
        for i, (p, g) in enumerate(zip(params, grads, strict=True)):
            m_hat, v_hat = adam_moments(per_tensor(state, i), g, b1, b2, t)
            u = m_hat / (v_hat.sqrt() + eps) + weight_decay * p
            x_norm, u_norm = float(p.norm()), float(u.norm())
            ratio = x_norm / u_norm if x_norm > 0 and u_norm > 0 else 1.0
            p -= lr * ratio * u

    return reference


@pytest.mark.parametrize("weight_decay", WEIGHT_DECAYS)
def test_lamb(weight_decay):
    """You et al. 2020, Algorithm 2: bias-corrected m_hat, v_hat inside r = m_hat /
    (sqrt(v_hat) + eps); u = r + lambda x; x <- x - lr ||x|| / ||u|| u."""
    lr = 0.01
    compare(
        table("lamb", lr, weight_decay=weight_decay),
        lamb_reference(lr, 0.9, 0.999, 1e-6, weight_decay),
    )


def test_lamb_first_step_by_hand():
    """You et al. 2020, Algorithm 2 at t = 1: r = sign(g) (bias-corrected), so a nonzero tensor
    moves lr * ||x|| along sign(g) and a zero one lr * sign(g) (ratio 1): |db| = 0.010 at
    lr 0.01, not pytorch-optimizer Lamb's 0.316 (issue 17)."""
    w = nn.Parameter(torch.tensor([3.0, 4.0]))  # ||w|| = 5
    b = nn.Parameter(torch.zeros(2))
    optimizer = table("lamb", 0.01)([w, b])
    w.grad, b.grad = torch.tensor([1.0, -1.0]), torch.tensor([2.0, -0.5])
    optimizer.step()
    step = 0.01 * 5 / math.sqrt(2)  # ||u|| = sqrt(2) (u = sign(g) up to eps)
    torch.testing.assert_close(
        w.detach(), torch.tensor([3.0 - step, 4.0 + step]), rtol=1e-5, atol=0
    )
    torch.testing.assert_close(b.detach(), torch.tensor([-0.01, 0.01]), rtol=1e-5, atol=0)


def adabelief_reference(lr, b1, b2, eps, weight_decay, rectify) -> RefStep:
    """Zhuang et al. 2020, Algorithm 2 as the official adabelief-pytorch (>= 0.1) codes it:
    decoupled weight decay x <- x (1 - lr wd); m <- b1 m + (1-b1) g;
    s <- b2 s + (1-b2) (g - m)^2 + eps; without rectification x <- x - lr m_hat /
    (sqrt(s / (1-b2^t)) + eps); with it (RAdam's, Liu et al. 2020 Alg. 2 on s, threshold
    N_sma >= 5), x <- x - lr r_t / (1-b1^t) * m / (sqrt(s) + eps) and, below the threshold,
    the SGD step x <- x - lr m / (1-b1^t) (degenerated_to_sgd)."""
    rho_inf = 2 / (1 - b2) - 1

    def reference(params, grads, state, t):
        for i, (p, g) in enumerate(zip(params, grads, strict=True)):
            s = per_tensor(state, i)
            p *= 1 - lr * weight_decay
            s["m"] = b1 * s.get("m", torch.zeros_like(p)) + (1 - b1) * g
            s["s"] = b2 * s.get("s", torch.zeros_like(p)) + (1 - b2) * (g - s["m"]) ** 2 + eps
            if not rectify:
                denom = (s["s"] / (1 - b2**t)).sqrt() + eps
                p -= lr / (1 - b1**t) * s["m"] / denom
                continue
            rho = rho_inf - 2 * t * b2**t / (1 - b2**t)
            if rho >= 5:
                r = math.sqrt(
                    (1 - b2**t)
                    * (rho - 4)
                    / (rho_inf - 4)
                    * (rho - 2)
                    / rho
                    * rho_inf
                    / (rho_inf - 2)
                )
                p -= lr * r / (1 - b1**t) * s["m"] / (s["s"].sqrt() + eps)
            else:
                p -= lr / (1 - b1**t) * s["m"]

    return reference


@pytest.mark.parametrize("weight_decay", WEIGHT_DECAYS)
@pytest.mark.parametrize("rectify", [True, False])
def test_adabelief(rectify, weight_decay):
    """Zhuang et al. 2020, Algorithm 2 (eps 1e-16 inside s_t), rectified as the official
    adabelief-pytorch >= 0.1 defaults (rectify=True, weight_decouple=True) and unrectified
    (pytorch-optimizer's default); see adabelief_reference."""
    lr = 0.01
    make = table(
        "adabelief",
        lr,
        eps=1e-16,
        rectify=rectify,
        weight_decouple=True,
        degenerated_to_sgd=True,
        weight_decay=weight_decay,
    )
    compare(make, adabelief_reference(lr, 0.9, 0.999, 1e-16, weight_decay, rectify))


def test_vae_adabelief_arm_uses_the_official_defaults():
    """The claim arm (configs/vae-adabelief-vs-adam.yaml) is AdaBelief as its authors ship it."""
    from suite.config import load_experiment

    spec = load_experiment("vae-adabelief-vs-adam", "quick").arms["adabelief"]["model"]
    assert spec.optimizer == "adabelief"
    assert spec.kwargs["rectify"] is True and spec.kwargs["weight_decouple"] is True
    assert spec.kwargs["eps"] == 1e-16


# --------------------------------------------------------------------------------------------
# Lookahead
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("weight_decay", WEIGHT_DECAYS)
def test_lookahead_around_sgd_momentum(weight_decay):
    """Zhang et al. 2019, Algorithm 1: k inner steps (here SGD momentum 0.9, its buffer kept
    across synchronisations), then slow <- slow + alpha (fast - slow), fast <- slow; the slow
    weights start at the initial parameters. k 5, alpha 0.5, 30 steps = 6 synchronisations."""
    lr, mu, k, alpha = 0.05, 0.9, 5, 0.5

    def reference(params, grads, state, t):
        if "slow" not in state:  # called before its first step: the initial parameters
            state["slow"] = [p.clone() for p in params]
        for i, (p, g) in enumerate(zip(params, grads, strict=True)):
            s = per_tensor(state, i)
            s["buf"] = (
                mu * s["buf"] + (g + weight_decay * p) if "buf" in s else g + weight_decay * p
            )
            p -= lr * s["buf"]
        if t % k == 0:
            for p, slow in zip(params, state["slow"], strict=True):
                slow += alpha * (p - slow)
                p.copy_(slow)

    def make(params):
        spec = OptimizerSpec(
            optimizer="sgd",
            lr=lr,
            kwargs={"momentum": mu, "weight_decay": weight_decay},
            lookahead=LookaheadSpec(k=k, alpha=alpha),
        )
        return build_role_optimizer("test", spec, params)

    compare(make, reference)


# --------------------------------------------------------------------------------------------
# K-FAC: against the full Kronecker-factored Fisher, solved directly
# --------------------------------------------------------------------------------------------


def kfac_model() -> nn.Sequential:
    torch.manual_seed(3)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).double()
    nn.init.zeros_(model[2].bias)
    return model


def layer_statistics(model: nn.Sequential, x: Tensor, y: Tensor):
    """Per layer: gradient matrix [grad_W, grad_b], A = E[a a^T] (a with a ones entry) and
    G = E[(n dL/dz)(n dL/dz)^T] of the mean loss over n samples, computed functionally."""
    w1, b1, w2, b2 = (p.detach().clone().requires_grad_() for p in model.parameters())
    z1 = x @ w1.T + b1
    h = torch.tanh(z1)
    z2 = h @ w2.T + b2
    loss = F.mse_loss(z2, y)
    gz1, gz2, gw1, gb1, gw2, gb2 = torch.autograd.grad(loss, [z1, z2, w1, b1, w2, b2])
    n = x.shape[0]
    layers = []
    for inp, gz, gw, gb in [(x, gz1, gw1, gb1), (h.detach(), gz2, gw2, gb2)]:
        a = torch.cat([inp, torch.ones(n, 1, dtype=inp.dtype)], dim=1)
        layers.append(
            (torch.cat([gw, gb.unsqueeze(1)], dim=1), a.T @ a / n, (gz * n).T @ (gz * n) / n)
        )
    return layers


def solve_kronecker(grad: Tensor, left: Tensor, right: Tensor, damping: float) -> Tensor:
    """(A (x) G + damping I)^-1 vec(grad), building the full matrix: vec stacks columns, so
    (A (x) G) vec(X) = vec(G X A) for symmetric A (right) and G (left)."""
    fisher = torch.kron(right, left) + damping * torch.eye(grad.numel(), dtype=grad.dtype)
    vec = grad.T.reshape(-1)
    return torch.linalg.solve(fisher, vec).reshape(grad.shape[1], grad.shape[0]).T


def unpack(matrix: Tensor) -> tuple[Tensor, Tensor]:
    return matrix[:, :-1], matrix[:, -1]


@pytest.mark.parametrize("weight_decay", WEIGHT_DECAYS)
def test_kfac_is_acktr_natural_gradient_with_trust_region(weight_decay):
    """Martens & Grosse 2015 §3 (F ~ A (x) G per layer), ACKTR (Wu et al. 2017 §3.1; baselines
    acktr/kfac.py, factored_damping=False): v = (A (x) G + lambda I)^-1 g, eta = min(1,
    sqrt(2 delta / (lr^2 sum g.v))), then tf.train.MomentumOptimizer(lr (1 - mu), mu):
    buf <- mu buf + eta v (+ wd x), x <- x - lr (1 - mu) buf. Factors: EMA (first value, then
    decay 0.8), eigendecomposed every step. delta is chosen so that the clip binds at some
    steps and not at others."""
    lr, mu, damping, decay, delta = 0.25, 0.9, 1e-2, 0.8, 2e-2
    model = kfac_model()
    reference = copy.deepcopy(model)
    optimizer = KFACNatural(
        model.parameters(),
        lr=lr,
        modules=model,
        damping=damping,
        stat_decay=decay,
        update_freq=1,
        momentum=mu,
        kl_clip=delta,
        weight_decay=weight_decay,
    )
    gen = torch.Generator().manual_seed(4)
    factors: dict[int, tuple[Tensor, Tensor]] = {}
    buffers: dict[int, Tensor] = {}
    etas = []
    for _ in range(12):
        x = torch.randn(16, 3, generator=gen, dtype=torch.float64)
        y = torch.randn(16, 2, generator=gen, dtype=torch.float64)
        optimizer.zero_grad()
        F.mse_loss(model(x), y).backward()
        optimizer.step()
        # The reference: direct solves with the full Kronecker-factored Fisher.
        directions, dot = [], 0.0
        for index, (grad, a, g) in enumerate(layer_statistics(reference, x, y)):
            old = factors.get(index)
            a, g = (
                (a, g)
                if old is None
                else (decay * old[0] + (1 - decay) * a, decay * old[1] + (1 - decay) * g)
            )
            factors[index] = (a, g)
            v = solve_kronecker(grad, g, a, damping)
            directions.append(v)
            dot += float((v * grad).sum())
        eta = min(1.0, math.sqrt(2 * delta / (lr**2 * dot)))
        etas.append(eta)
        with torch.no_grad():
            layers = [reference[0], reference[2]]
            for index, (layer, v) in enumerate(zip(layers, directions, strict=True)):
                for key, (param, part) in enumerate(
                    zip((layer.weight, layer.bias), unpack(v), strict=True)
                ):
                    update = eta * part + weight_decay * param
                    slot = 2 * index + key
                    buffers[slot] = mu * buffers[slot] + update if slot in buffers else update
                    param -= lr * (1 - mu) * buffers[slot]
        for p, q in zip(model.parameters(), reference.parameters(), strict=True):
            torch.testing.assert_close(p, q, rtol=1e-9, atol=1e-12)
    assert min(etas) < 0.999 and max(etas) == 1.0, etas  # both branches of the clip ran


@pytest.mark.parametrize("weight_decay", WEIGHT_DECAYS)
def test_kfac_adam_is_adam_on_pi_damped_kfac_directions(weight_decay):
    """K-FAC's pi-split factored damping (Martens & Grosse 2015, §6.3): v = ((A + pi sqrt(l) I)
    (x) (G + sqrt(l)/pi I))^-1 g with pi^2 = (tr A / dim A) / (tr G / dim G), solved with the
    full Kronecker product; then Adam (Kingma & Ba 2015, Alg. 1) on v + wd x. Inverses every
    step (update_freq 1), factor EMA decay 0.8."""
    lr, damping, decay = 0.01, 1e-2, 0.8
    model = kfac_model()
    reference = copy.deepcopy(model)
    optimizer = KFACAdam(
        model.parameters(),
        lr=lr,
        modules=model,
        damping=damping,
        stat_decay=decay,
        update_freq=1,
        weight_decay=weight_decay,
    )
    gen = torch.Generator().manual_seed(5)
    factors: dict[int, tuple[Tensor, Tensor]] = {}
    adam: dict[int, dict] = {}
    for t in range(1, 13):
        x = torch.randn(16, 3, generator=gen, dtype=torch.float64)
        y = torch.randn(16, 2, generator=gen, dtype=torch.float64)
        optimizer.zero_grad()
        F.mse_loss(model(x), y).backward()
        optimizer.step()
        directions = []
        for index, (grad, a, g) in enumerate(layer_statistics(reference, x, y)):
            old = factors.get(index)
            a, g = (
                (a, g)
                if old is None
                else (decay * old[0] + (1 - decay) * a, decay * old[1] + (1 - decay) * g)
            )
            factors[index] = (a, g)
            pi = math.sqrt(
                (float(torch.trace(a)) / a.shape[0]) / (float(torch.trace(g)) / g.shape[0])
            )
            a_damped = a + pi * math.sqrt(damping) * torch.eye(a.shape[0], dtype=a.dtype)
            g_damped = g + math.sqrt(damping) / pi * torch.eye(g.shape[0], dtype=g.dtype)
            directions.append(solve_kronecker(grad, g_damped, a_damped, 0.0))
        with torch.no_grad():
            layers = [reference[0], reference[2]]
            for index, (layer, v) in enumerate(zip(layers, directions, strict=True)):
                for key, (param, part) in enumerate(
                    zip((layer.weight, layer.bias), unpack(v), strict=True)
                ):
                    s = adam.setdefault(2 * index + key, {})
                    m_hat, v_hat = adam_moments(s, part + weight_decay * param, 0.9, 0.999, t)
                    param -= lr * m_hat / (v_hat.sqrt() + 1e-8)
        for p, q in zip(model.parameters(), reference.parameters(), strict=True):
            torch.testing.assert_close(p, q, rtol=1e-9, atol=1e-12)


def test_kfac_adam_first_step_is_lr_times_sign():
    """Why kfac_adam is not the literature's K-FAC: Adam's first step is lr * sign(v) whatever
    the preconditioner did (m_hat / sqrt(v_hat) = v / |v|)."""
    model = kfac_model()
    before = [p.detach().clone() for p in model.parameters()]
    optimizer = KFACAdam(model.parameters(), lr=0.01, modules=model, eps=0.0)
    F.mse_loss(
        model(torch.randn(8, 3, dtype=torch.float64)), torch.zeros(8, 2, dtype=torch.float64)
    ).backward()
    optimizer.step()
    for p, b in zip(model.parameters(), before, strict=True):
        torch.testing.assert_close((p - b).abs(), torch.full_like(p, 0.01))


def test_every_row_has_a_reference_test():
    """The table and this file agree: a new row needs a reference test here."""
    tested = {
        "sgd",
        "adagrad",
        "adadelta",
        "rmsprop",
        "rmsprop_deepmind",
        "adam",
        "adamw",
        "nadam",
        "radam",
        "adamax",
        "adafactor",
        "lamb",
        "adabelief",
        "kfac",
        "kfac_adam",
    }
    assert set(OPTIMIZERS) == tested
    assert OPTIMIZERS["kfac"].cls() is KFACNatural and OPTIMIZERS["kfac_adam"].cls() is KFACAdam


# --------------------------------------------------------------------------------------------
# The Nature-DQN arm of the suite's DQN trainer against the Lua rule on summed gradients
# --------------------------------------------------------------------------------------------

NATURE_ARMS = [
    ("quickstart", "rmsprop_deepmind"),
    ("dqn-breakout-adam-vs-rmsprop", "rmsprop_huber"),
]


def dqn_arm(experiment: str, arm: str, steps: int, loss_scale: float | None = None):
    """Train the arm's q optimizer inside agents/dqn.py's SuiteDQN.train (mean Huber loss over
    the experiment's batch size) on CartPole replay data, and replay the same minibatches
    through NeuralQLearner.lua's update in float64: per-sample TD errors clipped to +-1,
    backpropagated unaveraged (dw = sum_i delta_i dQ_i/dw), then the Lua RMSprop with 0.01.
    Returns (suite parameters after each step, Lua parameters after each step, start)."""
    import dataclasses

    from agents.common import make_env
    from agents.dqn import build
    from suite.config import load_experiment

    loaded = load_experiment(experiment, "quick")
    spec = loaded.arms[arm]["q"]
    if loss_scale is not None:
        spec = dataclasses.replace(spec, kwargs={**spec.kwargs, "loss_scale": loss_scale})
    task = loaded.arm_tasks.get(arm, loaded.task)
    config = dataclasses.replace(
        task,
        env_id="CartPole-v1",
        network="mlp",
        net_arch=[32, 32],
        total_timesteps=600,
        learning_starts=100_000,  # fill the buffer, train nothing
        buffer_size=1000,
        max_episode_steps=None,
    )
    assert config.loss == "huber"
    model = build(config, {"q": spec}, make_env("CartPole-v1", 0), seed=0, device="cpu")
    model.learn(config.total_timesteps)
    lua_net = copy.deepcopy(model.q_net.q_net).double()  # Flatten extractor + this MLP
    target_net = copy.deepcopy(model.q_net_target.q_net).double()
    start = [p.detach().clone().double() for p in model.q_net.parameters()]
    samples = []
    sample = model.replay_buffer.sample

    def recording_sample(*args, **kwargs):
        samples.append(sample(*args, **kwargs))
        return samples[-1]

    model.replay_buffer.sample = recording_sample
    lua_state: dict = {}
    lua_step = lua_rmsprop(spec.lr, 0.01, 1.0)
    suite_path, lua_path = [], []
    for t in range(1, steps + 1):
        model.train(gradient_steps=1, batch_size=config.batch_size)
        data = samples[-1]
        discounts = data.discounts if data.discounts is not None else config.gamma
        with torch.no_grad():
            next_q = target_net(data.next_observations.double().flatten(1)).max(dim=1).values
            target = data.rewards.double() + (1 - data.dones.double()) * discounts * next_q[:, None]
        params = list(lua_net.parameters())
        q = lua_net(data.observations.double().flatten(1)).gather(1, data.actions.long())
        delta = (target - q).clamp(-1.0, 1.0).detach()  # Nature DQN's error clipping
        dw = torch.autograd.grad((delta * q).sum(), params)  # the Lua dw (ascent direction)
        with torch.no_grad():
            lua_step(params, [-d for d in dw], lua_state, t)  # lua_rmsprop negates: dw back
        suite_path.append([p.detach().double().clone() for p in model.q_net.parameters()])
        lua_path.append([p.detach().clone() for p in params])
    assert len(samples) == steps
    return suite_path, lua_path, start


@pytest.mark.parametrize(("experiment", "arm"), NATURE_ARMS)
def test_nature_dqn_arm_follows_the_lua_rule_on_summed_gradients(experiment, arm):
    """Mnih et al. 2015 (Extended Data Table 1; NeuralQLearner.lua): the suite's arm, run by the
    DQN trainer on its batch-mean Huber loss, follows the Lua update on batch-summed clipped
    TD errors for 200 steps, within float32 tolerance of the float64 Lua trajectory."""
    suite_path, lua_path, start = dqn_arm(experiment, arm, steps=200)
    for t, (ours, lua) in enumerate(zip(suite_path, lua_path, strict=True), start=1):
        for p, q, s in zip(ours, lua, start, strict=True):
            moved = float((q - s).abs().max())
            # Relative to the distance travelled: float32 rounding of the forward/backward
            # pass and of the parameters, accumulated over t steps.
            # Measured: at most 2e-5 of it (5.5e-7 absolute) on both arms.
            assert float((p - q).abs().max()) <= 2e-4 * moved + 1e-7, (t, moved)
    final_move = sum(float((q - s).norm()) for q, s in zip(lua_path[-1], start, strict=True))
    assert final_move > 0.05  # the comparison is not between two parameters standing still


def test_the_old_eps_scale_moves_far_too_little():
    """Issue 17: eps 0.01 applied to the mean-loss gradient (loss_scale 1) steps far less than
    Nature DQN: here 0.19x the Lua distance after 100 steps (issue 17 measured 0.038x on
    MinAtar over 300), so the trajectory test above fails for it."""
    suite_path, lua_path, start = dqn_arm("dqn-breakout-adam-vs-rmsprop", "rmsprop_huber", 100, 1.0)
    ours = sum(float((p - s).norm()) for p, s in zip(suite_path[-1], start, strict=True))
    lua = sum(float((q - s).norm()) for q, s in zip(lua_path[-1], start, strict=True))
    assert ours < 0.5 * lua, (ours, lua)


def test_every_nature_dqn_arm_scales_eps_to_its_batch():
    """Each rmsprop_deepmind arm of a DQN experiment has loss_scale = its batch size at every
    budget (the trainer's loss is the batch mean; Nature DQN sums)."""
    from suite.config import BUDGETS, CONFIG_DIR, experiment_names, load_experiment
    from suite.schema import read_yaml

    checked = 0
    for name in experiment_names():
        if read_yaml(CONFIG_DIR / f"{name}.yaml").get("trainer") != "dqn":
            continue
        for budget in BUDGETS:
            experiment = load_experiment(name, budget)
            for arm, roles in experiment.arms.items():
                spec = roles["q"]
                if spec.optimizer != "rmsprop_deepmind":
                    continue
                task = experiment.arm_tasks.get(arm, experiment.task)
                assert spec.kwargs.get("loss_scale") == task.batch_size, (name, budget, arm)
                checked += 1
    assert checked >= 3 * 3  # quickstart's arm and dqn-breakout's two, at three budgets
