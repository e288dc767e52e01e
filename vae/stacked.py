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

from gans.data import DataOrder
from gans.stacked import StackedOptimizer, continuing_stream, stacked_role_optimizers
from suite.optimizers import OptimizerSpec
from vae import vae as single


class VaeStack:
    """S VAEs as stacked parameters, run by torch.func.vmap over vae.py's own modules."""

    def __init__(self, encoders: list[nn.Module], decoders: list[nn.Module]):
        self.seeds = len(encoders)
        self.state = {}
        self.skeletons = {}
        for role, modules in (("encoder", encoders), ("decoder", decoders)):
            self.state[role] = torch.func.stack_module_state(modules)
            self.skeletons[role] = copy.deepcopy(modules[0]).to("meta")

    def to(self, device: str) -> VaeStack:
        for params, buffers in self.state.values():
            for group in (params, buffers):
                for name, tensor in group.items():
                    moved = tensor.detach().to(device)
                    group[name] = moved.requires_grad_(tensor.requires_grad)
        return self

    def role_parameters(self, split_roles: bool) -> dict[str, list[torch.Tensor]]:
        """Parameters per optimizer role, as vae.build_optimizers splits them."""
        encoder = list(self.state["encoder"][0].values())
        decoder = list(self.state["decoder"][0].values())
        if split_roles:
            return {"encoder": encoder, "decoder": decoder}
        return {"model": encoder + decoder}

    def seed_state_dict(self, seed_index: int) -> dict[str, dict[str, torch.Tensor]]:
        """Seed ``seed_index``'s weights as vae.py encoder/decoder state dicts."""
        return {
            role: {
                name: t[seed_index].detach().clone()
                for group in groups
                for name, t in group.items()
            }
            for role, groups in self.state.items()
        }


@dataclasses.dataclass
class SeedStreams:
    """Per-seed data order and random stream, each what seed i's lone run would use."""

    orders: list[DataOrder]
    generators: list[torch.Generator]


def build_stack(
    config: single.Config, seeds: list[int], channels: int, image_count: int, device: str
) -> tuple[VaeStack, SeedStreams]:
    """Build each seed's networks exactly as a lone run does (vae.build), then stack them.

    :param image_count: training images (for each seed's DataOrder).
    """
    lone = dataclasses.replace(config, compile=False, channels_last=False)
    encoders, decoders, generators = [], [], []
    for seed in seeds:
        torch.manual_seed(seed)
        model = single.build(lone, channels, "cpu")  # initialized on the CPU, as vae.build does
        encoders.append(model.encoder)
        decoders.append(model.decoder)
        generators.append(continuing_stream(seed, device))
    stack = VaeStack(encoders, decoders).to(device)
    orders = [DataOrder(image_count, config.batch_size, seed, device) for seed in seeds]
    return stack, SeedStreams(orders, generators)


def build_stacked_optimizers(
    stack: VaeStack, specs: dict[str, OptimizerSpec], config: single.Config
) -> dict[str, StackedOptimizer]:
    """One optimizer per role over all seeds' parameters (elementwise optimizers only)."""
    return stacked_role_optimizers(stack.role_parameters(config.split_roles), stack.seeds, specs)


def seed_inputs(images: torch.Tensor, streams: SeedStreams, config: single.Config):
    """Each seed's next batch and its reparameterization noise, drawn in the lone run's order:
    the dequantization noise (Gaussian likelihood only) inside model_input, then eps for z.
    Returns x (S, B, C, H, W) and eps (S, B, latent)."""
    xs, epss = [], []
    for order, stream in zip(streams.orders, streams.generators, strict=True):
        batch = images[order.next()]
        noise = None
        if config.likelihood == "gaussian":
            noise = torch.rand(batch.shape, device=batch.device, generator=stream)
        xs.append(single.model_input(batch, config, noise))
        epss.append(
            torch.randn(len(batch), config.latent_dim, device=batch.device, generator=stream)
        )
    return torch.stack(xs), torch.stack(epss)


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
    """vae.train_step for every seed at once. Returns the seeds' losses, shape (S,).

    The step minimizes the sum of the seeds' losses, whose gradient for seed i's parameters is
    seed i's own gradient.
    """
    x, eps = seed_inputs(images, streams, config)
    loss = functools.partial(
        _seed_loss, stack.skeletons, config, kl_weight, autocast or contextlib.nullcontext
    )
    losses = torch.func.vmap(loss)(stack.state["encoder"], stack.state["decoder"], x, eps)
    for optimizer in optimizers.values():
        optimizer.zero_grad()
    losses.sum().backward()
    for optimizer in optimizers.values():
        optimizer.step()
    return losses.detach()


def seed_model(stack: VaeStack, seed_index: int, config: single.Config, channels: int, device):
    """Seed ``seed_index`` as a vae.VAE (for vae.evaluate and the sample grids)."""
    model = single.build(config, channels, device)
    state = stack.seed_state_dict(seed_index)
    model.encoder.load_state_dict(state["encoder"])
    model.decoder.load_state_dict(state["decoder"])
    return model
