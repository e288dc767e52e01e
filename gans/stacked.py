"""Many seeds of one DCGAN arm in one process: S seeds trained as one stacked model.

One DCGAN at batch 64 uses a few percent of a large GPU; training the seeds of an arm together
fills it. Seed i of the stack is seed i trained alone with gans/dcgan.py's ``train_step`` after
``torch.manual_seed(i)`` and ``build``: the same initial weights (built by dcgan.build itself),
its own data order (a DataOrder with its seed), its own flips and noise (a generator that
continues the random stream the lone run would draw from), its own optimizer state and its own
BatchNorm statistics. Nothing is shared between seeds except the kernels that run them.

Two ways to run a stack, with one interface (``generate``, ``discriminate``, ``parameters``,
``seed_state_dict``):

- ``grouped``: every convolution of dcgan's networks becomes one grouped convolution with
  ``groups=S`` and seed-major channels; a BatchNorm over S*C channels then normalizes each
  seed's channels with that seed's batch, so its statistics are per seed by construction.
- ``vmap``: torch.func.stack_module_state over S dcgan modules and vmap(functional_call); the
  BatchNorm running statistics are stacked buffers, updated per seed.

bench/dcgan_stacked.py measures which is faster; tests/test_stacked.py checks seed i against
seed i alone on CPU.

Optimizers: one optimizer over the stacked parameters is S independent optimizers only if its
update is elementwise (SGD, Adam, RMSprop, ...). Gradient-norm clipping is done per seed here.
Optimizers with per-tensor or cross-parameter terms (LAMB's trust ratios, Adafactor's factored
moments, K-FAC's curvature blocks, unknown custom classes) would mix seeds and are refused.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
from typing import Literal

import torch
from torch import nn

from gans import dcgan
from gans.data import DataOrder, random_hflip, to_signed_range
from suite.optimizers import OptimizerSpec, RoleOptimizer, build_role_optimizer

Method = Literal["grouped", "vmap"]

# Optimizers whose update of each parameter element depends only on that element's own history
# (and on the step count), so that one optimizer over S stacked seeds equals S optimizers.
ELEMENTWISE_OPTIMIZERS = (
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
    "adabelief",
)


def check_stackable(role: str, spec: OptimizerSpec) -> None:
    """Raise ValueError unless one optimizer over stacked seeds trains each seed as alone."""
    if spec.optimizer not in ELEMENTWISE_OPTIMIZERS:
        raise ValueError(
            f"{role}: optimizer {spec.optimizer!r} cannot train stacked seeds (its update has "
            "per-tensor or cross-parameter terms, e.g. trust ratios, factored moments or "
            "curvature blocks, that would mix seeds); train these seeds one by one. Stackable: "
            + ", ".join(ELEMENTWISE_OPTIMIZERS)
        )
    if spec.kwargs.get("adanorm"):
        raise ValueError(f"{role}: adanorm uses per-tensor gradient norms; cannot stack seeds")


# --- the grouped stack -------------------------------------------------------------------------


def _grouped_layer(layer: nn.Module, seeds: int) -> nn.Module:
    """The layer for ``seeds`` seeds side by side in the channel dimension."""
    if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)):
        if layer.groups != 1 or layer.dilation != (1, 1) or layer.output_padding != (0, 0):
            raise ValueError(f"cannot group {layer}: only plain convolutions are stacked")
        return type(layer)(
            seeds * layer.in_channels,
            seeds * layer.out_channels,
            layer.kernel_size,
            layer.stride,
            layer.padding,
            groups=seeds,
            bias=layer.bias is not None,
        )
    if isinstance(layer, nn.BatchNorm2d):
        return nn.BatchNorm2d(seeds * layer.num_features, layer.eps, layer.momentum)
    if any(True for _ in layer.parameters()):
        raise ValueError(f"cannot group {type(layer).__name__}: it has parameters")
    return copy.deepcopy(layer)  # activations


def _grouped_net(singles: list[nn.Sequential]) -> nn.Sequential:
    """One grouped Sequential holding every seed's weights, seed-major along dimension 0.

    Conv2d weights are (out, in, k, k) and ConvTranspose2d weights (in, out, k, k); with
    ``groups=S`` the grouped weight is the seeds' weights concatenated along dimension 0 in
    both cases, and BatchNorm's weights and statistics are concatenated the same way.
    """
    grouped = nn.Sequential(*[_grouped_layer(layer, len(singles)) for layer in singles[0]])
    states = [net.state_dict() for net in singles]
    stacked = {
        name: torch.cat([s[name] for s in states]) if tensor.dim() else tensor.clone()
        for name, tensor in states[0].items()
    }
    grouped.load_state_dict(stacked)
    return grouped


class GroupedStack(nn.Module):
    """S DCGANs as grouped convolutions. Tensors in and out are seed-first: (S, B, ...)."""

    def __init__(
        self, generators: list[dcgan.Generator], discriminators: list[dcgan.Discriminator]
    ):
        super().__init__()
        self.seeds = len(generators)
        self.generator = _grouped_net([g.net for g in generators])
        self.discriminator = _grouped_net([d.net for d in discriminators])

    def _to_channels(self, x: torch.Tensor) -> torch.Tensor:
        """(S, B, C, H, W) -> (B, S*C, H, W), seed-major channels."""
        seeds, batch = x.shape[:2]
        return x.transpose(0, 1).reshape(batch, seeds * x.shape[2], *x.shape[3:])

    def _from_channels(self, x: torch.Tensor) -> torch.Tensor:
        """(B, S*C, H, W) -> (S, B, C, H, W)."""
        batch = x.shape[0]
        return x.view(batch, self.seeds, -1, *x.shape[2:]).transpose(0, 1)

    def generate(self, z: torch.Tensor) -> torch.Tensor:
        return self._from_channels(self.generator(self._to_channels(z)))

    def discriminate(self, images: torch.Tensor) -> torch.Tensor:
        """(S, B, C, H, W) -> logits (S, B)."""
        return self._from_channels(self.discriminator(self._to_channels(images))).flatten(2)[..., 0]

    def role_parameters(self) -> dict[str, list[nn.Parameter]]:
        return {
            "generator": list(self.generator.parameters()),
            "discriminator": list(self.discriminator.parameters()),
        }

    def seed_state_dict(self, seed_index: int) -> dict[str, dict[str, torch.Tensor]]:
        """Seed ``seed_index``'s weights and statistics as dcgan.Generator/Discriminator state."""
        return {
            role: {
                f"net.{name}": t.chunk(self.seeds)[seed_index].clone() if t.dim() else t.clone()
                for name, t in getattr(self, role).state_dict().items()
            }
            for role in ("generator", "discriminator")
        }


# --- the vmap stack ----------------------------------------------------------------------------


class VmapStack:
    """S DCGANs as stacked parameters run by torch.func.vmap over dcgan's own modules."""

    def __init__(
        self, generators: list[dcgan.Generator], discriminators: list[dcgan.Discriminator]
    ):
        self.seeds = len(generators)
        self.nets = {"generator": generators, "discriminator": discriminators}
        self.state = {}
        self.calls = {}
        for role, modules in self.nets.items():
            params, buffers = torch.func.stack_module_state(modules)
            self.state[role] = (params, buffers)
            skeleton = copy.deepcopy(modules[0]).to("meta")
            self.calls[role] = torch.func.vmap(functools.partial(_call, skeleton))

    def to(self, device: str) -> VmapStack:
        for params, buffers in self.state.values():
            for group in (params, buffers):
                for name, tensor in group.items():
                    moved = tensor.detach().to(device)
                    group[name] = moved.requires_grad_(tensor.requires_grad)
        return self

    def generate(self, z: torch.Tensor) -> torch.Tensor:
        return self.calls["generator"](*self.state["generator"], z)

    def discriminate(self, images: torch.Tensor) -> torch.Tensor:
        return self.calls["discriminator"](*self.state["discriminator"], images)

    def role_parameters(self) -> dict[str, list[torch.Tensor]]:
        return {role: list(params.values()) for role, (params, _) in self.state.items()}

    def seed_state_dict(self, seed_index: int) -> dict[str, dict[str, torch.Tensor]]:
        return {
            role: {
                name: t[seed_index].detach().clone()
                for group in groups
                for name, t in group.items()
            }
            for role, groups in self.state.items()
        }


def _call(module: nn.Module, params, buffers, x: torch.Tensor) -> torch.Tensor:
    return torch.func.functional_call(module, (params, buffers), (x,))


# --- building a stack --------------------------------------------------------------------------


@dataclasses.dataclass
class SeedStreams:
    """Per-seed data order and random stream, each what seed i's lone run would use."""

    orders: list[DataOrder]
    generators: list[torch.Generator]


def build_stack(
    config: dcgan.Config,
    seeds: list[int],
    channels: int,
    image_count: int,
    device: str,
    method: Method,
) -> tuple[GroupedStack | VmapStack, SeedStreams]:
    """Build each seed's networks exactly as a lone run does, then stack them.

    :param image_count: training images (for each seed's DataOrder).
    """
    lone = dataclasses.replace(config, compile=False, channels_last=False)
    generators, discriminators, streams = [], [], []
    for seed in seeds:
        torch.manual_seed(seed)
        gan = dcgan.build(lone, channels, "cpu")  # initialized on the CPU, as dcgan.build does
        generators.append(gan.generator)
        discriminators.append(gan.discriminator)
        streams.append(continuing_stream(seed, device))
    if method == "grouped":
        stack = GroupedStack(generators, discriminators).to(device)
    elif method == "vmap":
        stack = VmapStack(generators, discriminators).to(device)
    else:
        raise ValueError(f"unknown stacking method {method!r} (valid: grouped, vmap)")
    orders = [DataOrder(image_count, config.batch_size, seed, device) for seed in seeds]
    return stack, SeedStreams(orders, streams)


def continuing_stream(seed: int, device: str) -> torch.Generator:
    """The random stream seed ``seed``'s lone run draws flips, noise (or, for the VAE, its
    reparameterization noise) from after building.

    On the CPU that is the global generator after initialization; on CUDA the lone run's noise
    comes from the CUDA generator, which initialization (done on the CPU) did not touch.
    """
    if device == "cpu":
        stream = torch.Generator()
        stream.set_state(torch.get_rng_state())
        return stream
    return torch.Generator(device).manual_seed(seed)


def build_stacked_optimizers(
    stack: GroupedStack | VmapStack, specs: dict[str, OptimizerSpec]
) -> dict[str, StackedOptimizer]:
    """One optimizer per role over all seeds' parameters (elementwise optimizers only)."""
    return stacked_role_optimizers(stack.role_parameters(), stack.seeds, specs)


def stacked_role_optimizers(
    role_parameters: dict[str, list[torch.Tensor]], seeds: int, specs: dict[str, OptimizerSpec]
) -> dict[str, StackedOptimizer]:
    """Each role's optimizer over its stacked parameters, clipping per seed (shared by the DCGAN
    and VAE stacks)."""
    optimizers = {}
    for role, params in role_parameters.items():
        check_stackable(role, specs[role])
        # Clipping is per seed (StackedOptimizer); the role optimizer must not clip the stack.
        unclipped = dataclasses.replace(specs[role], clip_grad_norm=None)
        inner = build_role_optimizer(role, unclipped, params)
        optimizers[role] = StackedOptimizer(inner, seeds, specs[role].clip_grad_norm)
    return optimizers


class StackedOptimizer:
    """A role optimizer over stacked seeds, with gradient-norm clipping per seed."""

    def __init__(self, inner: RoleOptimizer, seeds: int, clip_grad_norm: float | None):
        self.inner, self.seeds, self.clip_grad_norm = inner, seeds, clip_grad_norm
        self.last_grad_norms: torch.Tensor | None = None

    def zero_grad(self) -> None:
        self.inner.zero_grad()

    def step(self) -> None:
        if self.clip_grad_norm is not None:
            self.last_grad_norms = clip_per_seed(self.inner.params, self.seeds, self.clip_grad_norm)
        self.inner.step()


@torch.no_grad()
def clip_per_seed(params: list[torch.Tensor], seeds: int, max_norm: float) -> torch.Tensor:
    """torch.nn.utils.clip_grad_norm_ for each seed's slice of stacked parameters (seed-major
    along dimension 0). Returns the seeds' total norms before clipping."""
    grads = [p.grad.view(seeds, -1) for p in params if p.grad is not None]
    norms = torch.stack([g.float().pow(2).sum(1) for g in grads]).sum(0).sqrt()
    # The same coefficient as clip_grad_norm_: max_norm / (norm + 1e-6), at most 1.
    scale = (max_norm / (norms + 1e-6)).clamp(max=1.0)
    for g in grads:
        g.mul_(scale[:, None].to(g.dtype))
    return norms


# --- one training step for all seeds -----------------------------------------------------------


def real_batches(images: torch.Tensor, streams: SeedStreams, hflip: bool) -> torch.Tensor:
    """Each seed's next real batch, as dcgan.real_batch draws it: (S, B, C, H, W) in [-1, 1]."""
    batches = []
    for order, stream in zip(streams.orders, streams.generators, strict=True):
        batch = to_signed_range(images[order.next()])
        batches.append(random_hflip(batch, stream) if hflip else batch)
    return torch.stack(batches)


def noise(streams: SeedStreams, batch: int, latent_dim: int, device: str) -> torch.Tensor:
    """Each seed's noise for one batch: (S, B, latent, 1, 1)."""
    return torch.stack(
        [
            torch.randn(batch, latent_dim, 1, 1, device=device, generator=g)
            for g in streams.generators
        ]
    )


def train_step(
    stack: GroupedStack | VmapStack,
    optimizers: dict[str, StackedOptimizer],
    images: torch.Tensor,
    streams: SeedStreams,
    config: dcgan.Config,
    autocast=None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """dcgan.train_step for every seed at once. Returns the seeds' D and G losses, shape (S,).

    Each seed's loss is dcgan's own loss function on that seed's logits; the step minimizes their
    sum, whose gradient for seed i's parameters is seed i's own gradient.
    """
    device, batch = images.device.type, config.batch_size
    autocast = autocast or _no_autocast
    d_loss = torch.func.vmap(functools.partial(dcgan.discriminator_loss, loss=config.loss))
    g_loss = torch.func.vmap(functools.partial(dcgan.generator_loss, loss=config.loss))
    for _ in range(config.discriminator_steps):
        # (1) D: real images towards "real", detached generated images towards "fake"
        real = real_batches(images, streams, config.hflip)
        with torch.no_grad(), autocast():
            fake = stack.generate(noise(streams, batch, config.latent_dim, device))
        with autocast():
            losses_d = d_loss(stack.discriminate(real).float(), stack.discriminate(fake).float())
        optimizers["discriminator"].zero_grad()
        losses_d.sum().backward()
        optimizers["discriminator"].step()
    # (2) G: make D call fresh generated images "real" (the label flip)
    with autocast():
        z = noise(streams, batch, config.latent_dim, device)
        losses_g = g_loss(stack.discriminate(stack.generate(z)).float())
    optimizers["generator"].zero_grad()
    losses_g.sum().backward()
    optimizers["generator"].step()
    return losses_d.detach(), losses_g.detach()


def _no_autocast():
    import contextlib

    return contextlib.nullcontext()
