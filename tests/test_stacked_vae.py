"""Stacked VAE seeds (vae/stacked.py): seed i of a stack trains as seed i alone with vae/vae.py,
for one role and for split roles, Bernoulli and Gaussian likelihoods (the Gaussian one draws
dequantization noise from each seed's stream); optimizers that would mix seeds are refused."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from gans.data import DataOrder, ImageDataConfig
from suite.optimizers import OptimizerSpec
from vae import stacked
from vae import vae as single

SEEDS = [0, 1, 2]
STEPS = 3
KL_WEIGHT = 0.5
CONFIG = single.Config(
    data=ImageDataConfig(source="mnist_idx", path="unused", image_size=28, channels=1),
    latent_dim=4,
    width=4,
    hidden=16,
    batch_size=8,
)
# Clipping at 0.05 is active from the first step (the summed-pixel loss has large gradients).
ADAM = OptimizerSpec(optimizer="adam", lr=2.0e-3, clip_grad_norm=0.05)
ADABELIEF = OptimizerSpec(optimizer="adabelief", lr=1.0e-3, kwargs={"eps": 1.0e-16})


def images() -> torch.Tensor:
    return torch.randint(
        0, 256, (40, 1, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(7)
    )


def train_alone(seed: int, config: single.Config, specs) -> single.VAE:
    """Seed ``seed`` as vae.train does it: seed, build, optimizers, its data order, steps."""
    data = images()
    torch.manual_seed(seed)
    model = single.build(config, 1, "cpu")
    optimizers = single.build_optimizers(model, specs, config)
    order = DataOrder(len(data), config.batch_size, seed)
    for _ in range(STEPS):
        single.train_step(model, optimizers, data[order.next()], config, KL_WEIGHT)
    return model


@pytest.mark.parametrize(("likelihood", "split_roles"), [("bernoulli", False), ("gaussian", True)])
def test_each_seed_of_a_stack_trains_as_it_would_alone(likelihood, split_roles):
    config = dataclasses.replace(CONFIG, likelihood=likelihood, split_roles=split_roles)
    specs = {"encoder": ADAM, "decoder": ADABELIEF} if split_roles else {"model": ADAM}
    data = images()
    stack, streams = stacked.build_stack(config, SEEDS, 1, len(data), "cpu")
    optimizers = stacked.build_stacked_optimizers(stack, specs, config)
    for _ in range(STEPS):
        losses = stacked.train_step(stack, optimizers, data, streams, config, KL_WEIGHT)
    assert losses.shape == (len(SEEDS),)
    # Per-seed clipping was active and measured per seed, not over the whole stack.
    clipped = optimizers["encoder" if split_roles else "model"].last_grad_norms
    assert clipped.shape == (len(SEEDS),) and (clipped > 0.05).all()
    for index, seed in enumerate(SEEDS):
        alone = train_alone(seed, config, specs)
        state = stack.seed_state_dict(index)
        for role, module in (("encoder", alone.encoder), ("decoder", alone.decoder)):
            expected = module.state_dict()
            assert state[role].keys() == expected.keys()
            for name, tensor in expected.items():
                torch.testing.assert_close(
                    state[role][name], tensor, rtol=1e-4, atol=1e-5, msg=f"{role} {name} {seed}"
                )
    # The seeds are different models: seed 0 and seed 1 differ.
    first, second = stack.seed_state_dict(0), stack.seed_state_dict(1)
    assert not torch.allclose(first["encoder"]["head.weight"], second["encoder"]["head.weight"])


def test_a_seed_loads_into_vaes_own_modules_and_evaluates_as_alone():
    data = images()
    stack, streams = stacked.build_stack(CONFIG, SEEDS, 1, len(data), "cpu")
    optimizers = stacked.build_stacked_optimizers(stack, {"model": ADAM}, CONFIG)
    for _ in range(STEPS):
        stacked.train_step(stack, optimizers, data, streams, CONFIG, KL_WEIGHT)
    model = stacked.seed_model(stack, 1, CONFIG, 1, "cpu")
    metrics = single.evaluate(model, data[:16], CONFIG, seed=1)
    expected = single.evaluate(train_alone(1, CONFIG, {"model": ADAM}), data[:16], CONFIG, seed=1)
    assert metrics.keys() == expected.keys()
    for name, value in expected.items():
        assert metrics[name] == pytest.approx(value, rel=1e-4), name


@pytest.mark.parametrize(
    "spec",
    [OptimizerSpec(optimizer="lamb", lr=1.0e-3), OptimizerSpec(optimizer="adafactor", lr=1e-3)],
)
def test_optimizers_that_would_mix_seeds_are_refused(spec):
    stack, _ = stacked.build_stack(CONFIG, SEEDS, 1, 40, "cpu")
    with pytest.raises(ValueError, match="cannot"):
        stacked.build_stacked_optimizers(stack, {"model": spec}, CONFIG)
