"""Tests of suite.optimizers.extra and suite.optimizers.kfac against values computed by hand or by direct formulas."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from suite.optimizers.extra import LAMB, Lookahead, RMSpropDeepMind
from suite.optimizers.kfac import KFAC, KFACNatural, _conv_patches

# --------------------------------------------------------------------------------------------
# RMSpropDeepMind
# --------------------------------------------------------------------------------------------


def _rmsprop_run(optimizer_cls, grads: list[list[float]], **kwargs) -> Tensor:
    param = nn.Parameter(torch.tensor([1.0, -2.0], dtype=torch.float64))
    optimizer = optimizer_cls([param], **kwargs)
    for grad in grads:
        param.grad = torch.tensor(grad, dtype=torch.float64)
        optimizer.step()
    return param.detach()


def test_rmsprop_deepmind_two_steps_by_hand() -> None:
    result = _rmsprop_run(RMSpropDeepMind, [[0.5, -1.0], [0.2, 0.4]], lr=0.1)
    # Element 0. Step 1: g = 0.05*0.5 = 0.025, g2 = 0.05*0.25 = 0.0125.
    w0 = 1.0 - 0.1 * 0.5 / math.sqrt(0.0125 - 0.025**2 + 0.01)
    # Step 2: g = 0.95*0.025 + 0.05*0.2 = 0.03375, g2 = 0.95*0.0125 + 0.05*0.04 = 0.013875.
    w0 = w0 - 0.1 * 0.2 / math.sqrt(0.013875 - 0.03375**2 + 0.01)
    # Element 1. Step 1: g = 0.05*(-1) = -0.05, g2 = 0.05*1 = 0.05.
    w1 = -2.0 - 0.1 * (-1.0) / math.sqrt(0.05 - 0.05**2 + 0.01)
    # Step 2: g = 0.95*(-0.05) + 0.05*0.4 = -0.0275, g2 = 0.95*0.05 + 0.05*0.16 = 0.0555.
    w1 = w1 - 0.1 * 0.4 / math.sqrt(0.0555 - 0.0275**2 + 0.01)
    torch.testing.assert_close(result, torch.tensor([w0, w1], dtype=torch.float64))


def test_rmsprop_deepmind_differs_from_torch_centered_rmsprop() -> None:
    grads = [[0.5, -1.0], [0.2, 0.4]]
    ours = _rmsprop_run(RMSpropDeepMind, grads, lr=0.1)
    theirs = _rmsprop_run(torch.optim.RMSprop, grads, lr=0.1, alpha=0.95, eps=0.01, centered=True)
    # torch puts eps outside the root: sqrt(0.0125 - 0.025^2) + 0.01 = 0.119 vs 0.148 here.
    assert (ours - theirs).abs().max() > 1e-2


def test_rmsprop_deepmind_state_dict_round_trip() -> None:
    torch.manual_seed(0)
    param = nn.Parameter(torch.randn(3))
    optimizer = RMSpropDeepMind([param], lr=0.01)
    for _ in range(3):
        param.grad = torch.randn(3)
        optimizer.step()
    saved_param = param.detach().clone()
    saved_state = copy.deepcopy(optimizer.state_dict())
    assert set(saved_state["state"][0]) == {"step", "grad_avg", "square_avg"}
    next_grad = torch.randn(3)
    param.grad = next_grad
    optimizer.step()
    reference = param.detach().clone()

    resumed = nn.Parameter(saved_param.clone())
    optimizer2 = RMSpropDeepMind([resumed], lr=0.01)
    optimizer2.load_state_dict(saved_state)
    resumed.grad = next_grad
    optimizer2.step()
    assert torch.equal(resumed.detach(), reference)


def test_rmsprop_deepmind_loss_scale_by_hand() -> None:
    # loss_scale 4 on grad 0.5: the Lua step on dw = 4 * 0.5 = 2, i.e. lr * 2 / sqrt(0.05 * 4
    # - 0.1**2 + 0.01) = lr * 0.5 / sqrt(0.05 * 0.25 - 0.025**2 + 0.01 / 16).
    result = _rmsprop_run(RMSpropDeepMind, [[0.5, 0.0]], lr=0.1, loss_scale=4.0)
    lua = 1.0 - 0.1 * 2.0 / math.sqrt(0.05 * 4.0 - 0.1**2 + 0.01)
    torch.testing.assert_close(result, torch.tensor([lua, -2.0], dtype=torch.float64))
    assert abs(lua - (1.0 - 0.1 * 0.5 / math.sqrt(0.0125 - 0.025**2 + 0.01 / 16))) < 1e-12


@pytest.mark.parametrize(
    "kwargs",
    [{"lr": -1.0}, {"decay": 1.0}, {"decay": -0.1}, {"eps": 0.0}, {"loss_scale": 0.0}],
)
def test_rmsprop_deepmind_rejects_bad_arguments(kwargs: dict) -> None:
    with pytest.raises(ValueError, match="RMSpropDeepMind"):
        RMSpropDeepMind([nn.Parameter(torch.zeros(1))], **kwargs)


# --------------------------------------------------------------------------------------------
# KFAC
# --------------------------------------------------------------------------------------------


def _mlp(dtype: torch.dtype = torch.float64) -> nn.Sequential:
    return nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).to(dtype)


def _with_ones(x: Tensor) -> Tensor:
    return torch.cat([x, torch.ones(x.shape[0], 1, dtype=x.dtype)], dim=1)


def _pi_damped_inverses(a: Tensor, g: Tensor, damping: float) -> tuple[Tensor, Tensor]:
    pi = math.sqrt((torch.trace(a).item() / a.shape[0]) / (torch.trace(g).item() / g.shape[0]))
    eye_a = torch.eye(a.shape[0], dtype=a.dtype)
    eye_g = torch.eye(g.shape[0], dtype=g.dtype)
    a_inv = torch.linalg.inv(a + pi * math.sqrt(damping) * eye_a)
    g_inv = torch.linalg.inv(g + math.sqrt(damping) / pi * eye_g)
    return a_inv, g_inv


def _expected_mlp_directions(model: nn.Sequential, x: Tensor, y: Tensor, damping: float):
    """Preconditioned [grad_W, grad_b] of both layers, computed functionally from the batch."""
    w1, b1, w2, b2 = (p.detach().clone().requires_grad_() for p in model.parameters())
    z1 = x @ w1.T + b1
    h = torch.tanh(z1)
    z2 = h @ w2.T + b2
    loss = F.mse_loss(z2, y)
    gz1, gz2, gw1, gb1, gw2, gb2 = torch.autograd.grad(loss, [z1, z2, w1, b1, w2, b2])
    n = x.shape[0]
    directions = []
    for inp, gz, gw, gb in [(x, gz1, gw1, gb1), (h.detach(), gz2, gw2, gb2)]:
        a = _with_ones(inp)
        factor_a = a.T @ a / n
        per_sample = gz * n  # dL/dz of a mean loss is 1/n of the per-sample gradient
        factor_g = per_sample.T @ per_sample / n
        a_inv, g_inv = _pi_damped_inverses(factor_a, factor_g, damping)
        directions.append(g_inv @ torch.cat([gw, gb.unsqueeze(1)], dim=1) @ a_inv)
    return directions


@pytest.mark.parametrize(("dtype", "tol"), [(torch.float64, 1e-10), (torch.float32, 1e-5)])
def test_kfac_linear_first_step_matches_direct_computation(dtype: torch.dtype, tol: float) -> None:
    torch.manual_seed(0)
    model = _mlp(dtype)
    x = torch.randn(6, 3, dtype=dtype)
    y = torch.randn(6, 2, dtype=dtype)
    lr, damping = 0.1, 1e-2
    reference = copy.deepcopy(model).double()
    directions = _expected_mlp_directions(reference, x.double(), y.double(), damping)
    before = [p.detach().clone() for p in model.parameters()]

    optimizer = KFAC(model.parameters(), lr=lr, modules=model, damping=damping, momentum=0.0)
    optimizer.zero_grad()
    F.mse_loss(model(x), y).backward()
    optimizer.step()

    for layer_index, direction in enumerate(directions):
        w_before, b_before = before[2 * layer_index], before[2 * layer_index + 1]
        w_after, b_after = model[2 * layer_index].weight, model[2 * layer_index].bias
        expected_w = w_before.double() - lr * direction[:, :-1]
        expected_b = b_before.double() - lr * direction[:, -1]
        torch.testing.assert_close(w_after.detach().double(), expected_w, atol=tol, rtol=0)
        torch.testing.assert_close(b_after.detach().double(), expected_b, atol=tol, rtol=0)


def test_kfac_conv2d_first_step_matches_direct_unfold() -> None:
    torch.manual_seed(1)
    conv = nn.Conv2d(2, 3, kernel_size=2).double()
    x = torch.randn(4, 2, 4, 4, dtype=torch.float64)
    target = torch.randn(4, 3, 3, 3, dtype=torch.float64)
    lr, damping = 0.05, 1e-2
    weight0, bias0 = conv.weight.detach().clone(), conv.bias.detach().clone()

    # Direct computation: patches by slicing, KFC normalisation as documented in the module.
    out = F.conv2d(x, weight0, bias0).requires_grad_()
    loss = F.mse_loss(out, target)
    grad_out = torch.autograd.grad(loss, out)[0]
    w = weight0.clone().requires_grad_()
    b = bias0.clone().requires_grad_()
    grad_w, grad_b = torch.autograd.grad(F.mse_loss(F.conv2d(x, w, b), target), [w, b])
    n, positions = 4, 9
    patches, out_grads = [], []
    for sample in range(n):
        for i in range(3):
            for j in range(3):
                patches.append(x[sample, :, i : i + 2, j : j + 2].reshape(-1))
                out_grads.append(grad_out[sample, :, i, j])
    a = _with_ones(torch.stack(patches))
    factor_a = a.T @ a / (n * positions)
    g = torch.stack(out_grads)
    factor_g = n * g.T @ g  # = positions * mean over rows of (n g)(n g)^T
    a_inv, g_inv = _pi_damped_inverses(factor_a, factor_g, damping)
    direction = g_inv @ torch.cat([grad_w.reshape(3, -1), grad_b.unsqueeze(1)], dim=1) @ a_inv

    optimizer = KFAC(conv.parameters(), lr=lr, modules=conv, damping=damping, momentum=0.0)
    F.mse_loss(conv(x), target).backward()
    optimizer.step()

    state = optimizer.state[conv.weight]
    torch.testing.assert_close(state["kfac_A"], factor_a)
    torch.testing.assert_close(state["kfac_G"], factor_g)
    expected_w = weight0 - lr * direction[:, :-1].reshape(weight0.shape)
    torch.testing.assert_close(conv.weight.detach(), expected_w, atol=1e-10, rtol=0)
    torch.testing.assert_close(conv.bias.detach(), bias0 - lr * direction[:, -1])


@pytest.mark.parametrize(
    "conv_kwargs",
    [
        {"kernel_size": 3, "padding": 1, "stride": 2},
        {"kernel_size": (2, 3), "padding": "same", "dilation": 2},
        {"kernel_size": 3, "padding": "valid", "stride": (1, 2)},
    ],
)
def test_conv_patches_reproduce_the_convolution(conv_kwargs: dict) -> None:
    torch.manual_seed(2)
    conv = nn.Conv2d(2, 3, **conv_kwargs).double()
    x = torch.randn(2, 2, 7, 6, dtype=torch.float64)
    patches = _conv_patches(conv, x)
    via_patches = patches @ conv.weight.reshape(3, -1).T + conv.bias
    direct = conv(x).permute(0, 2, 3, 1).reshape(-1, 3)
    torch.testing.assert_close(via_patches, direct)


def _fresh_pair() -> tuple[nn.Sequential, KFAC, nn.Sequential, KFAC]:
    torch.manual_seed(3)
    model = _mlp()
    twin = copy.deepcopy(model)  # copied before any hooks are registered
    kwargs = {"lr": 0.1, "damping": 1e-2, "momentum": 0.0}
    return (
        model,
        KFAC(model.parameters(), modules=model, **kwargs),
        twin,
        KFAC(twin.parameters(), modules=twin, **kwargs),
    )


def _assert_same_kfac_state(model_a: nn.Module, opt_a: KFAC, model_b: nn.Module, opt_b: KFAC):
    for layer_a, layer_b in [(model_a[0], model_b[0]), (model_a[2], model_b[2])]:
        for key in ("kfac_A", "kfac_G", "kfac_A_inv", "kfac_G_inv"):
            torch.testing.assert_close(
                opt_a.state[layer_a.weight][key], opt_b.state[layer_b.weight][key]
            )
    for p_a, p_b in zip(model_a.parameters(), model_b.parameters(), strict=True):
        torch.testing.assert_close(p_a, p_b)


def test_kfac_pairs_several_forwards_like_one_concatenated_batch() -> None:
    model, optimizer, twin, twin_optimizer = _fresh_pair()
    x1, x2, x_unused = torch.randn(3, 3), torch.randn(5, 3), torch.randn(7, 3)
    x1, x2, x_unused = x1.double(), x2.double(), x_unused.double()
    target = torch.randn(8, 2, dtype=torch.float64)

    out = torch.cat([model(x1), model(x2)])
    model(x_unused)  # a forward that is never backpropagated must not enter the factors
    F.mse_loss(out, target).backward()
    optimizer.step()

    F.mse_loss(twin(torch.cat([x1, x2])), target).backward()
    twin_optimizer.step()
    _assert_same_kfac_state(model, optimizer, twin, twin_optimizer)


def test_kfac_zero_grad_drops_completed_pairs_but_not_pending_forwards() -> None:
    # The SB3 SAC order: critic forward, zero_grad, backward, step -- with pairs left over from
    # an earlier backward (the actor loss through the critic) that must not count.
    model, optimizer, twin, twin_optimizer = _fresh_pair()
    x_other = torch.randn(4, 3, dtype=torch.float64)
    x = torch.randn(6, 3, dtype=torch.float64)
    target = torch.randn(6, 2, dtype=torch.float64)

    model(x_other).pow(2).sum().backward()  # completed pairs that zero_grad must drop
    loss = F.mse_loss(model(x), target)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()

    twin_optimizer.zero_grad()
    F.mse_loss(twin(x), target).backward()
    twin_optimizer.step()
    _assert_same_kfac_state(model, optimizer, twin, twin_optimizer)


def test_kfac_plain_update_for_bare_parameters_and_layers_without_pairs() -> None:
    torch.manual_seed(4)
    model = _mlp()
    log_std = nn.Parameter(torch.tensor([0.5, -1.0], dtype=torch.float64))
    params = [*model.parameters(), log_std]
    optimizer = KFAC(params, lr=0.1, modules=model, momentum=0.0)
    x = torch.randn(5, 3, dtype=torch.float64)
    before = [p.detach().clone() for p in params]

    model.eval()  # eval mode: the hooks collect nothing, so every layer falls back to SGD
    loss = model(x).pow(2).mean() + log_std.pow(2).sum()
    loss.backward()
    grads = [p.grad.clone() for p in params]
    optimizer.step()
    for param, old, grad in zip(params, before, grads, strict=True):
        torch.testing.assert_close(param.detach(), old - 0.1 * grad)
    torch.testing.assert_close(log_std.detach(), torch.tensor([0.4, -0.8], dtype=torch.float64))
    assert "kfac_A" not in optimizer.state[model[0].weight]


def test_kfac_ignores_forwards_of_a_deep_copied_model() -> None:
    # copy.deepcopy(model) after the optimizer exists copies the hooks too (e.g. a target
    # network); the copy's forwards must not feed the original layers' statistics.
    model, optimizer, twin, twin_optimizer = _fresh_pair()
    target_network = copy.deepcopy(model)
    x = torch.randn(6, 3, dtype=torch.float64)
    y = torch.randn(6, 2, dtype=torch.float64)
    optimizer.zero_grad()
    loss = F.mse_loss(model(x), y)
    target_network(torch.randn(9, 3, dtype=torch.float64)).pow(2).sum().backward()
    loss.backward()
    optimizer.step()
    F.mse_loss(twin(x), y).backward()
    twin_optimizer.step()
    _assert_same_kfac_state(model, optimizer, twin, twin_optimizer)


def test_kfac_factors_are_exponential_moving_averages() -> None:
    torch.manual_seed(9)
    model = _mlp()
    optimizer = KFAC(model.parameters(), lr=0.01, modules=model, stat_decay=0.75)
    x1, x2 = torch.randn(5, 3, dtype=torch.float64), torch.randn(7, 3, dtype=torch.float64)
    for x in (x1, x2):
        optimizer.zero_grad()
        model(x).pow(2).mean().backward()
        optimizer.step()
    a1, a2 = _with_ones(x1), _with_ones(x2)
    expected = 0.75 * (a1.T @ a1 / 5) + 0.25 * (a2.T @ a2 / 7)  # first value, then the EMA
    torch.testing.assert_close(optimizer.state[model[0].weight]["kfac_A"], expected)


def test_kfac_recomputes_inverses_every_update_freq_steps() -> None:
    torch.manual_seed(7)
    model = _mlp()
    optimizer = KFAC(model.parameters(), lr=0.01, modules=model, update_freq=3)
    inverses = []
    for _ in range(4):
        optimizer.zero_grad()
        F.mse_loss(model(torch.randn(5, 3).double()), torch.randn(5, 2).double()).backward()
        optimizer.step()
        inverses.append(optimizer.state[model[0].weight]["kfac_A_inv"].clone())
    # Computed at statistics updates 1 and 4 only, although the factors change every step.
    assert torch.equal(inverses[0], inverses[1]) and torch.equal(inverses[0], inverses[2])
    assert not torch.allclose(inverses[2], inverses[3])


@pytest.mark.parametrize(
    ("inner", "reference_cls", "reference_kwargs"),
    [
        ("sgd", torch.optim.SGD, {"momentum": 0.9, "weight_decay": 0.01}),
        ("adam", torch.optim.Adam, {"betas": (0.8, 0.99), "eps": 1e-6, "weight_decay": 0.01}),
    ],
)
def test_kfac_inner_update_matches_torch_without_statistics(
    inner: str, reference_cls: type, reference_kwargs: dict
) -> None:
    # In eval mode no statistics are collected, so KFAC reduces to its inner update.
    torch.manual_seed(8)
    model = _mlp()
    twin = copy.deepcopy(model)
    optimizer = KFAC(model.parameters(), lr=0.1, modules=model, inner=inner, **reference_kwargs)
    reference = reference_cls(twin.parameters(), lr=0.1, **reference_kwargs)
    model.eval()
    for _ in range(3):
        x = torch.randn(5, 3, dtype=torch.float64)
        for net, opt in [(model, optimizer), (twin, reference)]:
            opt.zero_grad()
            net(x).pow(2).mean().backward()
            opt.step()
    for p_a, p_b in zip(model.parameters(), twin.parameters(), strict=True):
        torch.testing.assert_close(p_a, p_b)


@pytest.mark.parametrize("inner", ["sgd", "adam"])
def test_kfac_state_dict_round_trip_continues_identically(inner: str) -> None:
    torch.manual_seed(5)
    batches = [(torch.randn(6, 3), torch.randn(6, 2)) for _ in range(5)]
    kwargs = {"lr": 0.05, "damping": 1e-2, "update_freq": 2, "inner": inner, "momentum": 0.9}

    def train(model: nn.Module, optimizer: KFAC, steps: list[tuple[Tensor, Tensor]]) -> None:
        for x, y in steps:
            optimizer.zero_grad()
            F.mse_loss(model(x), y).backward()
            optimizer.step()

    model = _mlp(torch.float32)
    optimizer = KFAC(model.parameters(), modules=model, **kwargs)
    train(model, optimizer, batches[:3])
    saved_model = copy.deepcopy(model.state_dict())
    saved_optimizer = copy.deepcopy(optimizer.state_dict())
    weight_state = saved_optimizer["state"][0]
    assert {"kfac_A", "kfac_G", "kfac_A_inv", "kfac_G_inv", "kfac_step"} <= set(weight_state)
    train(model, optimizer, batches[3:])  # step 4 reuses the inverses, step 5 recomputes them

    resumed = _mlp(torch.float32)
    resumed.load_state_dict(saved_model)
    resumed_optimizer = KFAC(resumed.parameters(), modules=resumed, **kwargs)
    resumed_optimizer.load_state_dict(saved_optimizer)
    train(resumed, resumed_optimizer, batches[3:])
    for p_a, p_b in zip(model.parameters(), resumed.parameters(), strict=True):
        assert torch.equal(p_a, p_b)


def test_kfac_reduces_a_regression_loss() -> None:
    torch.manual_seed(6)
    model = _mlp(torch.float32)
    x, y = torch.randn(64, 3), torch.randn(64, 2)
    optimizer = KFAC(model.parameters(), lr=0.05, modules=model, damping=1e-2, update_freq=5)
    first = None
    for _ in range(30):
        optimizer.zero_grad()
        loss = F.mse_loss(model(x), y)
        first = loss.item() if first is None else first
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.9 * first


def test_kfac_rejects_modules_without_linear_or_conv() -> None:
    param = nn.Parameter(torch.zeros(2))
    with pytest.raises(ValueError, match="no nn.Linear or nn.Conv2d"):
        KFAC([param], modules=nn.Sequential(nn.Tanh()))
    other = nn.Linear(2, 2)  # a Linear whose weight is not among params does not count
    with pytest.raises(ValueError, match="no nn.Linear or nn.Conv2d"):
        KFAC([param], modules=other)


def test_kfac_rejects_unknown_inner_update() -> None:
    model = _mlp()
    with pytest.raises(ValueError, match="'sgd', 'adam'"):
        KFAC(model.parameters(), modules=model, inner="rmsprop")


def test_kfac_skips_grouped_conv_with_a_warning() -> None:
    model = nn.Sequential(nn.Conv2d(2, 2, 3, groups=2), nn.Flatten(), nn.Linear(2, 1))
    with pytest.warns(UserWarning, match="groups=2"):
        optimizer = KFAC(model.parameters(), modules=model)
    assert [type(layer.module) for layer in optimizer._layers] == [nn.Linear]
    assert KFAC.requires_modules


# --------------------------------------------------------------------------------------------
# Lookahead
# --------------------------------------------------------------------------------------------


def _quadratic_step(x: nn.Parameter, optimizer: Lookahead) -> None:
    optimizer.zero_grad()
    (x.pow(2) / 2).sum().backward()  # f(x) = x^2 / 2, f'(x) = x
    optimizer.step()


def test_lookahead_by_hand() -> None:
    x = nn.Parameter(torch.tensor([1.0], dtype=torch.float64))
    lookahead = Lookahead(torch.optim.SGD([x], lr=0.1), k=2, alpha=0.5)
    expected = [
        1.0 - 0.1 * 1.0,  # fast: 0.9
        1.0 + 0.5 * (0.81 - 1.0),  # fast 0.9 - 0.09 = 0.81, then slow = 0.905 = fast
        0.905 - 0.1 * 0.905,  # 0.8145
        0.905 + 0.5 * ((0.8145 - 0.1 * 0.8145) - 0.905),  # fast 0.73305, slow = 0.819025
    ]
    for value in expected:
        _quadratic_step(x, lookahead)
        assert x.item() == pytest.approx(value, abs=1e-12)
    assert x.item() == pytest.approx(0.819025, abs=1e-12)


def test_lookahead_state_dict_round_trip() -> None:
    x = nn.Parameter(torch.tensor([1.0, -3.0]))
    lookahead = Lookahead(torch.optim.SGD([x], lr=0.1, momentum=0.9), k=3, alpha=0.5)
    for _ in range(4):
        _quadratic_step(x, lookahead)
    saved_x = x.detach().clone()
    saved = copy.deepcopy(lookahead.state_dict())
    assert saved["counter"] == 4 and len(saved["slow"]) == 1
    for _ in range(3):
        _quadratic_step(x, lookahead)

    y = nn.Parameter(saved_x.clone())
    resumed = Lookahead(torch.optim.SGD([y], lr=0.1, momentum=0.9), k=3, alpha=0.5)
    resumed.load_state_dict(saved)
    for _ in range(3):
        _quadratic_step(y, resumed)
    assert torch.equal(x.detach(), y.detach())


def test_lookahead_scheduler_on_inner_is_seen_through_wrapper() -> None:
    x = nn.Parameter(torch.tensor([1.0], dtype=torch.float64))
    lookahead = Lookahead(torch.optim.SGD([x], lr=0.1), k=5, alpha=0.5)
    scheduler = torch.optim.lr_scheduler.StepLR(lookahead.inner, step_size=1, gamma=0.5)
    assert lookahead.param_groups is lookahead.inner.param_groups
    _quadratic_step(x, lookahead)
    scheduler.step()
    assert lookahead.param_groups[0]["lr"] == pytest.approx(0.05)
    _quadratic_step(x, lookahead)  # x = 0.9 - 0.05 * 0.9 (no synchronisation before step 5)
    assert x.item() == pytest.approx(0.855, abs=1e-12)


@pytest.mark.parametrize("kwargs", [{"k": 0}, {"alpha": 0.0}, {"alpha": 1.5}])
def test_lookahead_rejects_bad_arguments(kwargs: dict) -> None:
    with pytest.raises(ValueError, match="Lookahead"):
        Lookahead(torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1), **kwargs)


# --------------------------------------------------------------------------------------------
# LAMB (the paper reference is in tests/test_optimizer_references.py)
# --------------------------------------------------------------------------------------------


def test_lamb_zero_norm_ratio_zero_is_algorithm_2_literally() -> None:
    # phi(0) = 0: a zero tensor never moves; a nonzero one still does.
    w, b = nn.Parameter(torch.ones(2)), nn.Parameter(torch.zeros(2))
    optimizer = LAMB([w, b], lr=0.1, zero_norm_ratio=0.0)
    w.grad, b.grad = torch.ones(2), torch.ones(2)
    optimizer.step()
    assert torch.equal(b.detach(), torch.zeros(2)) and not torch.equal(w.detach(), torch.ones(2))


def test_lamb_state_dict_round_trip() -> None:
    torch.manual_seed(1)
    grads = [torch.randn(3) for _ in range(4)]
    param = nn.Parameter(torch.randn(3))
    twin = nn.Parameter(param.detach().clone())
    optimizer = LAMB([param], lr=0.05, weight_decay=0.01)
    for grad in grads[:2]:
        param.grad = grad
        optimizer.step()
    resumed = LAMB([twin], lr=0.05, weight_decay=0.01)
    twin.data.copy_(param.detach())
    resumed.load_state_dict(copy.deepcopy(optimizer.state_dict()))
    for grad in grads[2:]:
        param.grad, twin.grad = grad, grad.clone()
        optimizer.step()
        resumed.step()
    assert torch.equal(param.detach(), twin.detach())


@pytest.mark.parametrize(
    "kwargs",
    [
        {"lr": -1.0},
        {"betas": (1.0, 0.9)},
        {"eps": -1.0},
        {"weight_decay": -1.0},
        {"zero_norm_ratio": -1.0},
    ],
)
def test_lamb_rejects_bad_arguments(kwargs: dict) -> None:
    with pytest.raises(ValueError, match="LAMB"):
        LAMB([nn.Parameter(torch.zeros(1))], **kwargs)


# --------------------------------------------------------------------------------------------
# KFACNatural (the direct-solve references are in tests/test_optimizer_references.py)
# --------------------------------------------------------------------------------------------


def test_kfac_natural_state_dict_round_trip_continues_identically() -> None:
    torch.manual_seed(5)
    batches = [(torch.randn(6, 3), torch.randn(6, 2)) for _ in range(5)]
    kwargs = {"lr": 0.25, "damping": 1e-2, "update_freq": 2, "kl_clip": 1e-3}

    def train(model: nn.Module, optimizer: KFAC, steps: list[tuple[Tensor, Tensor]]) -> None:
        for x, y in steps:
            optimizer.zero_grad()
            F.mse_loss(model(x), y).backward()
            optimizer.step()

    model = _mlp(torch.float32)
    optimizer = KFACNatural(model.parameters(), modules=model, **kwargs)
    train(model, optimizer, batches[:3])
    saved_model = copy.deepcopy(model.state_dict())
    saved_optimizer = copy.deepcopy(optimizer.state_dict())
    keys = set(saved_optimizer["state"][0])
    assert {"kfac_A", "kfac_G", "kfac_QA", "kfac_sA", "kfac_QG", "kfac_sG", "kfac_step"} <= keys
    train(model, optimizer, batches[3:])

    resumed = _mlp(torch.float32)
    resumed.load_state_dict(saved_model)
    resumed_optimizer = KFACNatural(resumed.parameters(), modules=resumed, **kwargs)
    resumed_optimizer.load_state_dict(saved_optimizer)
    train(resumed, resumed_optimizer, batches[3:])
    for p_a, p_b in zip(model.parameters(), resumed.parameters(), strict=True):
        assert torch.equal(p_a, p_b)


def test_kfac_natural_reduces_a_regression_loss() -> None:
    torch.manual_seed(6)
    model = _mlp(torch.float32)
    x = torch.randn(64, 3)
    y = torch.stack([x[:, 0] - x[:, 1], 0.5 * x[:, 2]], dim=1)  # learnable, unlike noise
    optimizer = KFACNatural(model.parameters(), modules=model)  # ACKTR's defaults
    first = None
    for _ in range(30):
        optimizer.zero_grad()
        loss = F.mse_loss(model(x), y)
        first = loss.item() if first is None else first
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.5 * first


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [({"damping_mode": "tikhonov"}, "damping_mode"), ({"kl_clip": 0.0}, "kl_clip")],
)
def test_kfac_rejects_bad_damping_mode_and_kl_clip(kwargs: dict, fragment: str) -> None:
    model = _mlp()
    with pytest.raises(ValueError, match=fragment):
        KFAC(model.parameters(), modules=model, **kwargs)
