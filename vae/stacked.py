"""Many seeds of one VAE arm in one process: S seeds trained as one stacked model.

The VAE counterpart of gans/stacked.py. Seed i of the stack is seed i trained alone with
vae/vae.py's ``train_step`` after ``torch.manual_seed(i)`` and ``build``: the same initial
weights (built by vae.build itself), its own data order (a DataOrder with its seed), its own
dequantization noise and reparameterization noise (a generator that continues the random stream
the lone run would draw from) and its own optimizer state. Nothing is shared between seeds
except the kernels that run them.

Design: torch.func.stack_module_state over S vae.py modules and vmap(functional_call), so the
loss is vae.py's own ``forward_losses`` on each seed's parameters. gans/stacked.py measured
grouped convolutions slightly faster than vmap for the DCGAN (bench/README.md, CPU), where vmap
also carries BatchNorm's stacked running statistics; the VAE has no BatchNorm, and vmap's
batching rules run a convolution with per-seed weights as one grouped convolution and a linear
layer with per-seed weights as one batched matmul: the grouped design's kernels, without a second
copy of the networks. bench/vae_stacked.py measures it against seeds one after another.

Optimizers: as in gans/stacked.py, only elementwise optimizers (SGD, Adam, Adamax, AdaBelief,
...) train stacked seeds as S independent optimizers; gradient-norm clipping is per seed.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import functools
from types import SimpleNamespace

import torch
from torch import nn

from gans.data import load_image_data, seed_orders
from gans.train_state import StackedSeeds
from suite.optimizers import OptimizerSpec
from suite.result import Result
from suite.run.context import RunContext
from suite.run.stacking import (
    SeedStreams,
    StackedModules,
    StackedOptimizer,
    in_step_groups,
    load_seed_optimizers,
    lone_models,
    stacked_role_optimizers,
)
from vae import vae as single


class VaeStack(StackedModules):
    """S VAEs as stacked parameters, run by torch.func.vmap over vae.py's own modules."""

    def __init__(self, encoders: list[nn.Module], decoders: list[nn.Module]):
        self.seeds = len(encoders)
        self.state = {}
        self.skeletons = {}
        for role, modules in (("encoder", encoders), ("decoder", decoders)):
            self.state[role] = torch.func.stack_module_state(modules)
            self.skeletons[role] = copy.deepcopy(modules[0]).to("meta")

    def role_parameters(self, split_roles: bool) -> dict[str, list[torch.Tensor]]:
        """Parameters per optimizer role, as vae.build_optimizers splits them."""
        encoder = list(self.state["encoder"][0].values())
        decoder = list(self.state["decoder"][0].values())
        if split_roles:
            return {"encoder": encoder, "decoder": decoder}
        return {"model": encoder + decoder}


def build_stack(
    config: single.Config,
    seeds: list[int],
    channels: int,
    image_count: int,
    device: str,
    states: list[dict | None] | None = None,
    saved_rngs: list[dict | None] | None = None,
) -> tuple[VaeStack, SeedStreams]:
    """Build each seed's networks exactly as a lone run does (vae.build), then stack them.

    :param image_count: training images (for each seed's DataOrder).
    :param states: each seed's checkpoint (a vae.TrainState) or None.
    :param saved_rngs: each seed's checkpointed generator states (``ctx.saved_rng``) or None.
    """
    models, generators = lone_models(
        single.build, single.networks, config, channels, seeds, device, states, saved_rngs
    )
    stack = VaeStack([m.encoder for m in models], [m.decoder for m in models]).to(device)
    orders = seed_orders(image_count, config.batch_size, seeds, device, states)
    return stack, SeedStreams(orders, generators)


def build_stacked_optimizers(
    stack: VaeStack, specs: dict[str, OptimizerSpec], config: single.Config
) -> dict[str, StackedOptimizer]:
    """One optimizer per role over all seeds' parameters (elementwise optimizers only)."""
    return stacked_role_optimizers(stack.role_parameters(config.split_roles), stack.seeds, specs)


def seed_inputs(images: torch.Tensor, streams: SeedStreams, config: single.Config):
    """Each seed's next batch and its reparameterization noise, drawn as its lone run draws them
    (vae.draw_inputs, from the seed's stream). Returns x (S, B, C, H, W) and eps (S, B, latent)."""
    drawn = [
        single.draw_inputs(images[order.next()], config, stream)
        for order, stream in zip(streams.orders, streams.generators, strict=True)
    ]
    return torch.stack([x for x, _ in drawn]), torch.stack([eps for _, eps in drawn])


def _seed_loss(
    skeletons: dict[str, nn.Module],
    config: single.Config,
    kl_weight: float,
    autocast,
    encoder_state,
    decoder_state,
    x: torch.Tensor,
    eps: torch.Tensor,
) -> torch.Tensor:
    """One seed's loss, by vae.py's forward_losses on that seed's parameters (vmapped)."""
    model = SimpleNamespace(
        encode=functools.partial(torch.func.functional_call, skeletons["encoder"], encoder_state),
        decode=functools.partial(torch.func.functional_call, skeletons["decoder"], decoder_state),
        decoder=SimpleNamespace(log_scale=decoder_state[0]["log_scale"]),
        autocast=autocast,
    )
    recon, kl, _ = single.forward_losses(model, x, config, eps)
    return (recon + kl_weight * kl).mean()


def train_step(
    stack: VaeStack,
    optimizers: dict[str, StackedOptimizer],
    images: torch.Tensor,
    streams: SeedStreams,
    config: single.Config,
    kl_weight: float,
    autocast=None,
) -> torch.Tensor:
    """vae.train_step for every seed at once. Returns the seeds' losses, shape (S,)."""
    x, eps = seed_inputs(images, streams, config)
    loss = functools.partial(
        _seed_loss, stack.skeletons, config, kl_weight, autocast or contextlib.nullcontext
    )
    losses = torch.func.vmap(loss)(stack.state["encoder"], stack.state["decoder"], x, eps)
    return single.optimizer_step(optimizers, losses)


def seed_model(stack: VaeStack, seed_index: int, config: single.Config, channels: int, device):
    """Seed ``seed_index`` as a vae.VAE (for vae.evaluate and the sample grids)."""
    model = single.build(dataclasses.replace(config, compile=False), channels, device)
    state = stack.seed_state_dict(seed_index)
    model.encoder.load_state_dict(state["encoder"])
    model.decoder.load_state_dict(state["decoder"])
    return model


# --- the run: the seeds of one arm (suite run --stack-seeds) -----------------------------------


def train_stack(
    config: single.Config,
    specs: dict[str, OptimizerSpec],
    contexts: list[RunContext],
    method: str = "vmap",
) -> list[Result]:
    """vae.train for several seeds of one arm at once; ``contexts`` are the seeds' runs.

    Each seed's curves, test metrics, grids, checkpoints (a vae.TrainState) and result are what
    its lone run records, to float tolerance. Seeds whose checkpoints stand at different steps
    train as separate stacks; a seed that diverges is recorded as diverged and drops out, the
    others go on (suite/run/stacking.py: ``in_step_groups``, ``SeedRuns``).
    """
    if method != "vmap":
        raise ValueError(f"the VAE stacks with vmap only, not {method!r}")
    data = load_image_data(config.data, log=contexts[0].log).to(contexts[0].device)
    single.steps_per_epoch(data, config)  # at least one batch, checked before any seed trains
    train_group = functools.partial(_train_group, config, specs, data)
    return in_step_groups(contexts, train_group, single.TrainState.load)


def _train_group(config, specs, data, contexts, states) -> list[Result]:
    """One stack, from fresh or from checkpoints at the same step (vae.train_seeds)."""
    device, seeds, channels = contexts[0].device, [c.seed for c in contexts], data.train.shape[1]
    saved_rngs = [ctx.saved_rng for ctx in contexts]
    stack, streams = build_stack(
        config, seeds, channels, len(data.train), device, states, saved_rngs
    )
    optimizers = build_stacked_optimizers(stack, specs, config)
    if states[0] is not None:
        load_seed_optimizers(optimizers, [state.optimizers for state in states], stack)
    speed = single.speed_settings(config, device)
    autocast = speed.autocast if speed.amp else None  # the lone runs' bf16 autocast, if any
    role_params = stack.role_parameters(config.split_roles)
    stacked = Stacked(stack, optimizers, streams, role_params, "vmap", data.train, config,
                      autocast)  # fmt: skip
    return single.train_seeds(stacked, config, data, contexts, states)


@dataclasses.dataclass
class Stacked(StackedSeeds):
    """A stack as vae.train_seeds trains it: vae.Lone's methods for S seeds."""

    images: torch.Tensor
    """the training images (their channels and device are the seeds' models')."""
    config: single.Config
    autocast: object
    """the lone runs' bf16 autocast, or None."""

    def step(self, kl_weight: float) -> torch.Tensor:
        return train_step(self.stack, self.optimizers, self.images, self.streams, self.config,
                          kl_weight, self.autocast)  # fmt: skip

    def seed_model(self, i: int) -> single.VAE:
        channels, device = self.images.shape[1], str(self.images.device)
        return seed_model(self.stack, i, self.config, channels, device)
